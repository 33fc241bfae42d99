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
