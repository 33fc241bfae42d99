"""Numerical oracles shared by the tests."""

import numpy as np


def central_differences(f, x, eps: float) -> np.ndarray:
  """∂f/∂x of a scalar function `f` at `x`, one coordinate at a time: (f(x + ε eᵢ) − f(x − ε eᵢ)) / 2ε."""
  x = np.asarray(x, np.float64)
  numeric = np.zeros_like(x)
  for index in np.ndindex(x.shape):
    step = np.zeros_like(x)
    step[index] = eps
    numeric[index] = (float(f(x + step)) - float(f(x - step))) / (2 * eps)
  return numeric


def reflect_smooth(table, window) -> np.ndarray:
  """Σ_j window[j]·table[b + j − half] along the first axis with PyTorch reflect padding (edge not repeated),
  one bucket at a time."""
  table = np.asarray(table)
  num, half = table.shape[0], len(window) // 2
  out = np.zeros_like(table)
  for b in range(num):
    for j, w in enumerate(window):
      src = b + j - half
      src = -src if src < 0 else (2 * (num - 1) - src if src >= num else src)
      out[b] += w * table[src]
  return out
