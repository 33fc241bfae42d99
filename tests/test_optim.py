"""Optimizer builder: epoch schedules, σ group, freezing, weight decay, clipping — vs hand updates."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ml_collections import ConfigDict

from dirjax.optim import build_optimizer, learning_rate_at


# Parameter moves are differences of float32 values of order 1: resolution ~1.2e-7.
F32_ATOL = 3e-7


def make_config(num_epochs=90, train_only="", **overrides):
  optimizer = dict(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.0, schedule="constant",
                   milestones=(60, 80), decay_factor=0.1, grad_clip_norm=None)
  loss = dict(fix_noise_sigma=False, sigma_lr=0.01, sigma_schedule="constant")
  for key, value in overrides.items():
    (loss if key in loss else optimizer)[key] = value
  return ConfigDict(dict(num_epochs=num_epochs, train_only=train_only, optimizer=optimizer, loss=loss))


class Toy(nnx.Module):
  """A backbone weight, a head and a Balanced-MSE noise σ."""

  def __init__(self):
    self.backbone = nnx.Param(jnp.array([2.0, -1.0]))
    self.head = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    self.noise_sigma = nnx.Param(jnp.array(1.5))


def constant_grads(model, backbone=(0.5, -0.25), head=0.3, sigma=0.2):
  grads = jax.tree.map(lambda p: jnp.full_like(p, head), nnx.state(model, nnx.Param))
  grads["backbone"][...] = jnp.asarray(backbone, jnp.float32)
  grads["noise_sigma"][...] = jnp.asarray(sigma, jnp.float32)
  return grads


def run(config, steps, steps_per_epoch=1, grads_fn=constant_grads):
  model = Toy()
  opt = nnx.Optimizer(model, build_optimizer(config, steps_per_epoch), wrt=nnx.Param)
  history = [jax.tree.map(np.asarray, nnx.state(model, nnx.Param))]
  for _ in range(steps):
    opt.update(model, grads_fn(model))
    history.append(jax.tree.map(np.asarray, nnx.state(model, nnx.Param)))
  return model, opt, history


# --- schedules ---------------------------------------------------------------------------------

def test_multistep_lr_at_epoch_boundaries():
  config = make_config(schedule="multistep", lr=1e-3)
  spe = 7
  for epoch, expected in [(0, 1e-3), (59, 1e-3), (60, 1e-4), (79, 1e-4), (80, 1e-5), (89, 1e-5)]:
    for step in (epoch * spe, epoch * spe + spe - 1):  # first and last step of the epoch
      np.testing.assert_allclose(learning_rate_at(config, spe, step), expected, rtol=1e-6)


def test_cosine_lr_matches_closed_form_and_pytorch_recursion():
  config = make_config(schedule="cosine", lr=0.2, num_epochs=40)
  spe = 3
  closed = [0.2 * (1 + math.cos(math.pi * e / 40)) / 2 for e in range(40)]
  # PyTorch CosineAnnealingLR's chainable form: lr_e = lr_{e-1} (1 + cos(πe/T)) / (1 + cos(π(e-1)/T)).
  recursive = [0.2]
  for e in range(1, 40):
    recursive.append(recursive[-1] * (1 + math.cos(math.pi * e / 40)) / (1 + math.cos(math.pi * (e - 1) / 40)))
  ours = [learning_rate_at(config, spe, e * spe + 2) for e in range(40)]
  np.testing.assert_allclose(ours, closed, rtol=1e-5, atol=1e-9)
  np.testing.assert_allclose(ours, recursive, rtol=1e-5, atol=1e-9)


def test_optimizer_steps_use_the_epoch_of_each_step():
  # Plain SGD, constant gradient: each step moves the backbone by exactly lr(epoch(step)) · g.
  config = make_config(schedule="multistep", milestones=(1, 2), lr=0.5)
  _, _, history = run(config, steps=6, steps_per_epoch=2)
  moves = [h0["backbone"][0] - h1["backbone"][0] for h0, h1 in zip(history, history[1:])]
  np.testing.assert_allclose(moves, [0.25, 0.25, 0.025, 0.025, 0.0025, 0.0025], rtol=1e-5, atol=F32_ATOL)


# --- σ group -----------------------------------------------------------------------------------

def test_sigma_sgd_moves_by_its_own_lr():
  config = make_config(name="sgd", lr=0.1, sigma_lr=0.01)
  _, _, (h0, h1) = run(config, steps=1)
  np.testing.assert_allclose(h0["noise_sigma"] - h1["noise_sigma"], 0.01 * 0.2, rtol=1e-5, atol=F32_ATOL)
  np.testing.assert_allclose(h0["backbone"] - h1["backbone"], 0.1 * np.array([0.5, -0.25]), rtol=1e-5, atol=F32_ATOL)


def test_sigma_adam_first_step_is_lr_times_sign():
  # Adam's first bias-corrected step is lr · g / (|g| + eps).
  config = make_config(name="adam", lr=1e-3, sigma_lr=0.05)
  _, _, (h0, h1) = run(config, steps=1)
  np.testing.assert_allclose(h0["noise_sigma"] - h1["noise_sigma"], 0.05 * 0.2 / (0.2 + 1e-8), rtol=1e-5, atol=F32_ATOL)
  np.testing.assert_allclose(h0["backbone"] - h1["backbone"], 1e-3 * np.array([1.0, -1.0]), rtol=1e-5, atol=F32_ATOL)


@pytest.mark.parametrize("sigma_schedule", ["constant", "main"])
def test_sigma_lr_constant_or_annealed_with_the_main_cosine(sigma_schedule):
  config = make_config(schedule="cosine", num_epochs=4, lr=0.1, sigma_lr=0.01, sigma_schedule=sigma_schedule)
  _, _, history = run(config, steps=4)
  moves = [h0["noise_sigma"] - h1["noise_sigma"] for h0, h1 in zip(history, history[1:])]
  factor = np.array([(1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
  expected = 0.01 * 0.2 * (factor if sigma_schedule == "main" else np.ones(4))
  np.testing.assert_allclose(moves, expected, rtol=1e-4, atol=1e-9)


def test_fixed_sigma_does_not_move_and_keeps_no_state():
  config = make_config(name="adam", fix_noise_sigma=True)
  _, opt, history = run(config, steps=3)
  assert all(h["noise_sigma"] == history[0]["noise_sigma"] for h in history)
  assert not np.array_equal(history[-1]["backbone"], history[0]["backbone"])
  sigma_state_sizes = [x.size for p, x in jax.tree_util.tree_leaves_with_path(opt.opt_state)
                       if "noise_sigma" in jax.tree_util.keystr(p)]
  assert sigma_state_sizes == []


def test_lr_scales_group_follows_the_main_schedule_at_its_factor():
  # SGD, constant gradient, multistep: the head moves by 0.1·lr(epoch)·g, the backbone by lr(epoch)·g (the
  # reference's ×0.1 group of UVOTE's log-scale layers keeps its ratio through the ×0.1 milestones).
  config = make_config(schedule="multistep", milestones=(1,), lr=0.5, lr_scales={"head": 0.1})
  _, _, history = run(config, steps=2)
  head = [h0["head"]["kernel"][0, 0] - h1["head"]["kernel"][0, 0] for h0, h1 in zip(history, history[1:])]
  backbone = [h0["backbone"][0] - h1["backbone"][0] for h0, h1 in zip(history, history[1:])]
  np.testing.assert_allclose(head, [0.05 * 0.3, 0.005 * 0.3], rtol=1e-5, atol=F32_ATOL)
  np.testing.assert_allclose(backbone, [0.5 * 0.5, 0.05 * 0.5], rtol=1e-5, atol=F32_ATOL)


@pytest.mark.parametrize("factor", [0.0, -1.0, True, "0.1"])
def test_lr_scales_rejects_a_factor_that_is_not_positive(factor):
  with pytest.raises(ValueError, match=r"lr_scales\['head'\] must be a positive number"):
    build_optimizer(make_config(lr_scales={"head": factor}), 1)


def test_lr_scales_regex_that_matches_no_parameter_is_an_error():
  with pytest.raises(ValueError, match=r"lr_scales regex \['log_scale'\] matches no trainable parameter"):
    run(make_config(lr_scales={"log_scale": 0.1}), steps=1)


# --- freezing ----------------------------------------------------------------------------------

def test_train_only_head_freezes_everything_else_bit_identically():
  config = make_config(name="adam", train_only="head", fix_noise_sigma=True)
  _, opt, history = run(config, steps=3)
  for h in history[1:]:
    np.testing.assert_array_equal(h["backbone"], history[0]["backbone"])
    np.testing.assert_array_equal(h["noise_sigma"], history[0]["noise_sigma"])
  assert not np.array_equal(history[-1]["head"]["kernel"], history[0]["head"]["kernel"])
  # Adam moments exist only for the head (kernel 2 + bias 1), twice (mu, nu).
  moment_sizes = sum(x.size for x in jax.tree.leaves(opt.opt_state) if x.ndim > 0)
  assert moment_sizes == 2 * (2 + 1)


def test_train_only_regex_and_sigma_keeps_training():
  config = make_config(train_only=r"^head/kernel$")
  _, _, (h0, h1) = run(config, steps=1)
  np.testing.assert_array_equal(h1["head"]["bias"], h0["head"]["bias"])
  np.testing.assert_array_equal(h1["backbone"], h0["backbone"])
  assert not np.array_equal(h1["head"]["kernel"], h0["head"]["kernel"])
  np.testing.assert_allclose(h0["noise_sigma"] - h1["noise_sigma"], 0.01 * 0.2, rtol=1e-5, atol=F32_ATOL)


def test_train_only_matching_nothing_is_an_error():
  with pytest.raises(ValueError, match=r"train_only='fc'.*matches no parameter.*head/kernel"):
    run(make_config(train_only="fc"), steps=0)


# --- weight decay, clipping --------------------------------------------------------------------

def test_sgd_coupled_weight_decay_with_momentum_matches_pytorch_rule():
  config = make_config(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.01)
  _, _, history = run(config, steps=3)
  p, buf, g = np.array([2.0, -1.0]), np.zeros(2), np.array([0.5, -0.25])
  for h in history[1:]:
    d = g + 0.01 * p          # torch.optim.SGD: d_p = grad + wd·p
    buf = 0.9 * buf + d       # buf = momentum·buf + d_p (first step: buf = d_p)
    p = p - 0.1 * buf
    np.testing.assert_allclose(h["backbone"], p, rtol=1e-5)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_coupled_vs_adamw_decoupled_weight_decay(name):
  lr, wd, b1, b2, eps = 0.01, 0.1, 0.9, 0.999, 1e-8
  config = make_config(name=name, lr=lr, weight_decay=wd)
  _, _, history = run(config, steps=3)
  p, m, v, g = np.array([2.0, -1.0]), np.zeros(2), np.zeros(2), np.array([0.5, -0.25])
  for t, h in enumerate(history[1:], start=1):
    d = g + wd * p if name == "adam" else g
    m = b1 * m + (1 - b1) * d
    v = b2 * v + (1 - b2) * d ** 2
    step = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    p = p - lr * (step + (wd * p if name == "adamw" else 0.0))
    np.testing.assert_allclose(h["backbone"], p, rtol=1e-5)


def test_grad_clip_scales_the_main_group_only():
  config = make_config(grad_clip_norm=0.5, lr=1.0, sigma_lr=1.0)
  grads = lambda m: constant_grads(m, backbone=(3.0, 4.0), head=0.0, sigma=10.0)  # main norm 5
  _, _, (h0, h1) = run(config, steps=1, grads_fn=grads)
  clipped = np.array([3.0, 4.0]) * 0.5 / 5.0
  np.testing.assert_allclose(h0["backbone"] - h1["backbone"], clipped, rtol=1e-5, atol=F32_ATOL)
  np.testing.assert_allclose(h0["noise_sigma"] - h1["noise_sigma"], 10.0, rtol=1e-5, atol=F32_ATOL)


def test_update_works_under_jit():
  config = make_config(name="adam", schedule="multistep", train_only="head")
  model = Toy()
  opt = nnx.Optimizer(model, build_optimizer(config, 5), wrt=nnx.Param)
  before = np.asarray(model.backbone[...])

  @nnx.jit
  def step(model, opt):
    grads = nnx.grad(lambda m: (m.head(m.backbone[...][None]) ** 2).sum() + m.noise_sigma[...] ** 2)(model)
    opt.update(model, grads)

  step(model, opt)
  np.testing.assert_array_equal(model.backbone[...], before)
  assert int(opt.step[...]) == 1


@pytest.mark.parametrize("override,match", [
  (dict(name="rmsprop"), "unknown optimizer 'rmsprop'"),
  (dict(schedule="linear"), "unknown schedule 'linear'"),
  (dict(sigma_schedule="cosine"), "unknown sigma_schedule 'cosine'"),
  (dict(grad_clip_norm=0.0), "grad_clip_norm must be positive"),
])
def test_bad_config_errors(override, match):
  with pytest.raises(ValueError, match=match):
    build_optimizer(make_config(**override), 10)
  with pytest.raises(ValueError, match="steps_per_epoch"):
    build_optimizer(make_config(), 0)
