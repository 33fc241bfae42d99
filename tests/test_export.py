"""The trainer's real train step lowers for CUDA on a CPU-only machine (`jax.export`), so lowering
failures that only a GPU would show (custom calls, dtypes, sharding) show here."""

import re

import jax
import numpy as np
import pytest
from jax import export

from configs import synthetic_images
from dirjax import train
from scripts import benchmark


@pytest.mark.parametrize("loss, dtype", [("l1", None), ("bmc", None), ("l1", "bfloat16")])
def test_train_step_exports_for_cuda(loss, dtype):
  config = synthetic_images.get_config("smoke")
  config.loss.name = loss
  config.model.dtype = dtype
  experiment = train.Experiment(config)
  state = experiment.init_state()
  batch = benchmark.generated_batch(experiment, {"batch": config.batch_size, "image_size": 32, "channels": 1})
  epoch = jax.device_put(np.int32(1), experiment.replicated)
  counters = jax.device_put(train._zero_counters(), experiment.replicated)
  exported = export.export(experiment.train_step, platforms=["cuda"])(state, batch, epoch, counters)
  assert exported.platforms == ("cuda",)
  assert exported.nr_devices == experiment.mesh.size
  text = exported.mlir_module()
  targets = re.findall(r'custom_call @(\w+)', text)
  assert not [t for t in targets if t.startswith(("lapack_", "xla_python_cpu", "xla_ffi_python_cpu"))], targets
  assert ("bf16" in text) == (dtype == "bfloat16")
