"""DINOv3 axial rotary position embedding (timm `rope_type='dinov3'`).

Per head of size Dh, Dh/4 periods `temperature ** (2i / (Dh/2))`. Patch
centres are normalised per axis to [-1, 1] (`(arange(0.5, n) / n) * 2 - 1`,
'ij' order: row then column). Angles `2 pi coord / period` for the two axes
are concatenated to Dh/2 values and tiled twice to Dh ("rotate-half"
layout); q and k are rotated as `x cos + cat(-x2, x1) sin` in float32. Prefix
tokens (CLS, registers) are not rotated (identity rows in the tables).

The tables are numpy constants built at trace time, in the same float32
operation order as timm, so they cost nothing at run time.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=32)
def sincos(
  grid_h: int, grid_w: int, head_dim: int, temperature: float = 100.0
) -> tuple[np.ndarray, np.ndarray]:
  """Returns (sin, cos) tables of shape (grid_h * grid_w, head_dim)."""
  if head_dim % 4:
    raise ValueError(f'RoPE needs head_dim divisible by 4, got {head_dim}')
  n = head_dim // 4
  exps = 2.0 * np.arange(n, dtype=np.float32) / np.float32(head_dim // 2)
  periods = np.float32(temperature) ** exps
  axes = [
    (np.arange(0.5, s, dtype=np.float32) / np.float32(s)) for s in
    (grid_h, grid_w)
  ]
  grid = np.stack(np.meshgrid(*axes, indexing='ij'), axis=-1)
  coords = (np.float32(2.0) * grid - np.float32(1.0)).reshape(-1, 2)
  angles = np.float32(2 * math.pi) * coords[:, :, None] / periods[None, None]
  angles = angles.reshape(coords.shape[0], 2 * n).astype(np.float32)
  sin, cos = np.sin(angles), np.cos(angles)
  return np.tile(sin, (1, 2)), np.tile(cos, (1, 2))


def _padded(sin: np.ndarray, cos: np.ndarray, prefix: int):
  """Tables with identity rows (sin 0, cos 1) for the prefix tokens."""
  d = sin.shape[-1]
  return (np.concatenate([np.zeros((prefix, d), np.float32), sin]),
          np.concatenate([np.ones((prefix, d), np.float32), cos]))


def apply(x: jax.Array, sin: np.ndarray, cos: np.ndarray, prefix: int,
          token_axis: int = 1):
  """Rotates the non-prefix tokens of x, (B, N, heads, Dh) or (B, heads,
  N, Dh) with `token_axis=2`.

  The prefix tokens get identity rows in the tables (x * 1 + rot * 0 = x),
  so the rotation is one elementwise pass over all tokens, with no split
  and concatenation of the token axis.
  """
  s, c = _padded(sin, cos, prefix)
  if s.shape[0] != x.shape[token_axis]:
    raise ValueError(f'RoPE tables cover {s.shape[0]} tokens, x has '
                     f'{x.shape[token_axis]} on axis {token_axis}')
  lead = (x.ndim - 2 - (token_axis % x.ndim)) * (1,)
  shape = (s.shape[0], *lead, s.shape[1])
  s, c = jnp.asarray(s).reshape(shape), jnp.asarray(c).reshape(shape)
  b = x.astype(jnp.float32)
  half = b.shape[-1] // 2
  rot = jnp.concatenate([-b[..., half:], b[..., :half]], axis=-1)
  return (b * c + rot * s).astype(x.dtype)
