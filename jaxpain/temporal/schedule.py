"""The pyramid schedule of diffusion forcing, as a constant matrix.

A window holds C context tokens (clean) and H new tokens. Row m of the
matrix gives every token's noise LEVEL after m sampling steps; one step
(one network evaluation of the whole window) moves every token from its
level in row m - 1 to its level in row m. New token i starts at the top
level L and, with the "uncertainty" u (reference.md §G.4), runs
floor(i * u) steps behind token 0:

  level[m, C + i] = clip(L + floor(i * u) - m, 0, L),   level[m, < C] = 0

so earlier tokens finish first and later ones see them less noisy. Level 0
is clean. The matrix has R + 1 rows with R = L + floor((H - 1) * u) steps;
the last row is all zeros. u = 0 denoises all new tokens in lockstep (what
a full-sequence model does). Small integers, computed with numpy once and
baked into the jitted sampler as a constant.
"""

from __future__ import annotations

import math

import numpy as np


def pyramid(num_levels: int, window: int, context: int,
            uncertainty: float) -> np.ndarray:
  """Level indices, int32 (R + 1, window); see the module docstring.

  Args:
    num_levels: L, the top level (levels are 0 .. L).
    window: W tokens.
    context: C clean context tokens at the start of the window (0 for the
      first chunk of a stream).
    uncertainty: u >= 0, steps between consecutive new tokens.
  """
  if not 0 <= context < window:
    raise ValueError(f"context {context} must be in [0, window {window})")
  if uncertainty < 0 or num_levels < 1:
    raise ValueError("need num_levels >= 1 and uncertainty >= 0")
  new = window - context
  lag = np.floor(np.arange(new) * uncertainty + 1e-9).astype(np.int64)
  steps = num_levels + int(lag[-1])
  m = np.arange(steps + 1)[:, None]
  levels = np.clip(num_levels + lag[None, :] - m, 0, num_levels)
  out = np.zeros((steps + 1, window), np.int32)
  out[:, context:] = levels
  return out


def num_steps(num_levels: int, new_tokens: int, uncertainty: float) -> int:
  """Network evaluations per chunk: L + floor((H - 1) u)."""
  return num_levels + int(math.floor((new_tokens - 1) * uncertainty + 1e-9))
