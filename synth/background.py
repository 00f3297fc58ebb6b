"""Procedural backgrounds and alpha compositing.

The paper inpaints a scene around each rendered face (reference.md §A.1,
stage 8); by default we draw a cheap, seeded stand-in instead so that models
do not learn "black background = synthetic": a two-colour linear gradient,
a few large soft colour blobs (out-of-focus objects), low-frequency
brightness variation and a vignette. Each (identity, expression, view) gets
its own background, as in the released samples. The diffusers inpainting
backend lives in `synth.diffusion`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Backgrounds are smooth, so they are drawn at this size and upsampled.
_DRAW_SIZE = 64


def procedural_background(rng: np.random.Generator, size: int) -> np.ndarray:
  """A seeded (size, size, 3) uint8 background (sRGB)."""
  img = _draw(rng, _DRAW_SIZE)
  img = Image.fromarray((img * 255 + 0.5).astype(np.uint8))
  return np.asarray(img.resize((size, size), Image.BILINEAR))


def _draw(rng: np.random.Generator, size: int) -> np.ndarray:
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
  angle = rng.uniform(0, 2 * np.pi)
  t = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) + 0.5
  base = rng.uniform(0.08, 0.9) * _hue(rng, rng.uniform(0.05, 0.5))
  other = np.clip(base * rng.uniform(0.4, 1.4) + rng.normal(0, 0.08, 3), 0, 1)
  img = base + (other - base) * np.clip(t, 0, 1)[..., None]
  for _ in range(rng.integers(2, 7)):
    cx, cy = rng.uniform(-0.1, 1.1, 2)
    r = rng.uniform(0.08, 0.45)
    w = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    colour = rng.uniform(0.0, 1.0) * _hue(rng, rng.uniform(0.1, 0.7))
    img = img + (colour - img) * (rng.uniform(0.2, 0.7) * w)[..., None]
  fx, fy, ph = rng.normal(0, 3, 2), rng.normal(0, 3, 2), rng.uniform(0, 7, 2)
  wave = np.sin(fx[0] * xx + fy[0] * yy + ph[0]) + np.sin(
    fx[1] * xx + fy[1] * yy + ph[1]
  )
  img = img * (1 + 0.06 * wave)[..., None]
  vignette = 1 - rng.uniform(0.1, 0.4) * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
  return np.clip(img * vignette[..., None], 0, 1).astype(np.float32)


def _hue(rng: np.random.Generator, saturation: float) -> np.ndarray:
  """A random colour of unit brightness with the given saturation."""
  h = rng.uniform(0, 1)
  rgb = np.clip(np.abs(((h * 6 + np.array([0, 4, 2])) % 6) - 3) - 1, 0, 1)
  return ((1 - saturation) + saturation * rgb).astype(np.float32)


def composite(
  rgba: np.ndarray, background: np.ndarray | None, soften_edges: bool = False
) -> np.ndarray:
  """Puts a render over a background.

  With MSAA, pyrender resolves its buffer with the clear colour (0, 0, 0,
  0), so edge pixels hold alpha-premultiplied colour: out = rgb + bg (1 - a).
  Without MSAA the alpha is binary; `soften_edges` then antialiases the
  silhouette: the face colour is extended one pixel outwards and a 3x3 box
  filter of the mask becomes the alpha.

  Args:
    rgba: (H, W, 4) uint8 render with coverage alpha.
    background: (H, W, 3) uint8, or None for black.
    soften_edges: antialias a binary silhouette.

  Returns:
    (H, W, 3) uint8.
  """
  if background is None:
    return rgba[..., :3].copy()
  bg = np.asarray(background)
  if not soften_edges:
    a = rgba[..., 3:].astype(np.float32) / 255.0
    out = rgba[..., :3].astype(np.float32) + bg.astype(np.float32) * (1 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
  return _soft_composite(rgba, bg)


def _soft_composite(rgba: np.ndarray, bg: np.ndarray) -> np.ndarray:
  """Binary-alpha composite with a 3x3 box-filtered silhouette.

  Only the band of pixels whose 3x3 neighbourhood straddles the silhouette
  needs blending, so it is gathered and blended alone (about 1 ms at 256²
  instead of filtering whole images).
  """
  mask = rgba[..., 3] > 127
  h, w = mask.shape
  pad = np.pad(mask, 1).astype(np.uint8)
  count = sum(pad[r : r + h, c : c + w] for r in range(3) for c in range(3))
  out = np.where(mask[..., None], rgba[..., :3], bg).astype(np.uint8)
  rows, cols = np.nonzero((count > 0) & (count < 9))
  if not len(rows):
    return out
  rgb = np.pad(rgba[..., :3] * mask[..., None], ((1, 1), (1, 1), (0, 0)))
  spread = sum(
    rgb[rows + r, cols + c].astype(np.float32)
    for r in range(3)
    for c in range(3)
  )
  n = count[rows, cols].astype(np.float32)[:, None]
  inside = mask[rows, cols][:, None]
  fg = np.where(inside, rgba[rows, cols, :3], spread / n)
  a = n / 9.0
  blend = fg * a + bg[rows, cols].astype(np.float32) * (1 - a)
  out[rows, cols] = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
  return out
