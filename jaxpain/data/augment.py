"""On-device image ops: resize, the released augmentations, normalisation.

These run inside the jitted train step on uint8 batches straight from the
host (the host only decodes), one independent draw per image from a key
folded from the step key and the image's row, so the pain and the neutral
image (and every row) get their own parameters, and results do not depend
on how the batch is sharded.

The released synthetic-train pipeline (reference.md §B.2, torchvision):
Resize; horizontal flip p=0.3; rotation +-5 deg (fill 0); ColorJitter
(brightness 0.3, contrast 0.3, saturation 0.2, hue 0.1); RandomAffine
(translate 0.1, scale 0.9-1.1); GaussianBlur k=3, sigma in [0.1, 1.0];
Normalize (ImageNet). Deviations, on purpose:
- flip, rotation and affine are composed into ONE affine warp (bilinear
  resampling once instead of three times; fill 0 as torchvision);
- colour jitter is applied after the warp, in the fixed order brightness,
  contrast, saturation, hue (torchvision shuffles the order per image).

No gathers, for accelerators: sampling at computed coordinates (gathers)
made the warp cost 100-300x the model's own memory traffic in XLA's TPU
cost model (docs/benchmarks.md). The warp is two 1D passes instead, each a
per-image interpolation matrix applied with a matmul (scale, translation,
flip) after per-line shifts of a few static shifted copies (the small
rotation's shear). Without rotation that is exactly bilinear sampling; the
rotation adds one 1D linear interpolation per axis (sub-pixel smoothing,
mean difference under 1% of the range, tests/jaxpain/data/augment_test.py).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Augmentation strengths; zeros disable an op (see module docstring)."""

  flip_prob: float = 0.3
  rotate_deg: float = 5.0
  translate: float = 0.1
  scale: tuple[float, float] = (0.9, 1.1)
  brightness: float = 0.3
  contrast: float = 0.3
  saturation: float = 0.2
  hue: float = 0.1
  blur_sigma: tuple[float, float] = (0.1, 1.0)
  blur_kernel: int = 3

  @classmethod
  def from_dict(cls, d) -> AugmentConfig:
    d = dict(d)
    for k in ("scale", "blur_sigma"):
      if k in d:
        d[k] = tuple(d[k])
    return cls(**d)


def to_float(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [0, 1]."""
  return images.astype(jnp.float32) / 255.0


def resize(images: jax.Array, size: int) -> jax.Array:
  """Antialiased bilinear resize of (..., H, W, C) to size x size."""
  if images.shape[-3:-1] == (size, size):
    return images
  shape = images.shape[:-3] + (size, size, images.shape[-1])
  return jax.image.resize(images, shape, "bilinear", antialias=True)


def normalize(images: jax.Array, mean=IMAGENET_MEAN,
              std=IMAGENET_STD) -> jax.Array:
  """(x - mean) / std per channel; one-channel maps use the grey mean."""
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  if images.shape[-1] == 1:
    mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
  return (images - mean) / std


# ----------------------------------------------------------- geometry ------


def _affine_params(key: jax.Array, cfg: AugmentConfig) -> jax.Array:
  """A 2x3 matrix mapping output pixel coords (centred) to input coords."""
  kf, kr, kt, ks = jax.random.split(key, 4)
  flip = jax.random.uniform(kf) < cfg.flip_prob
  ang = jax.random.uniform(kr, (), minval=-1.0, maxval=1.0)
  ang = ang * cfg.rotate_deg * math.pi / 180.0
  t = jax.random.uniform(kt, (2,), minval=-1.0, maxval=1.0) * cfg.translate
  s = jax.random.uniform(ks, (), minval=cfg.scale[0], maxval=cfg.scale[1])
  # forward: flip, then rotate and scale about the centre, then translate
  # (fraction of the size); we need its inverse for sampling.
  fx = jnp.where(flip, -1.0, 1.0)
  c, si = jnp.cos(ang), jnp.sin(ang)
  # forward = s R(ang) diag(fx, 1); its inverse in closed form (a 2x2
  # jnp.linalg.inv would compile an LU decomposition).
  inv = jnp.array([[fx * c, fx * si], [-si, c]]) / s
  return inv, t


def _warp(image: jax.Array, inv: jax.Array, t: jax.Array,
          reach: int) -> jax.Array:
  """Bilinear sampling of `image` (H, W, C) under an inverse affine map.

  Gather-free (see `warp_coefficients`): two 1D passes, each a few static
  shifted copies per line (the small rotation's shear) and one matmul with
  a per-image interpolation matrix (scale, translation, flip). Without
  rotation this is exactly bilinear sampling with zero fill; a rotation
  adds one 1D linear interpolation per axis (sub-pixel smoothing).
  """
  h, w, _ = image.shape
  a, b, c, d, e, f = warp_coefficients(inv, t, h, w)
  # Pass 1, along each input row i: T(i, x) = I(i, alpha x + beta i + gamma)
  # so that pass 2, along each output column x: O(y, x) = T(d x + e y + f, x)
  # reads I at (d x + e y + f, a x + b y + c).
  alpha, beta = a - b * d / e, b / e
  gamma = c - b * f / e
  ci, cx = (h - 1) / 2.0, (w - 1) / 2.0
  # The shifted lines extend `reach` pixels past the image on both sides:
  # a line shifted back into the image brings content from there.
  rows = _shift_lines(image, beta * (jnp.arange(h) - ci), 1, reach)
  mat_x = _interp_matrix(alpha * jnp.arange(w) + gamma + beta * ci,
                         w, reach)
  tmp = jnp.einsum("ipc,xp->ixc", rows, mat_x, precision=_HIGHEST)
  cols = _shift_lines(tmp, d * (jnp.arange(w) - cx), 0, reach)
  mat_y = _interp_matrix(e * jnp.arange(h) + f + d * cx, h, reach)
  return jnp.einsum("rxc,yr->yxc", cols, mat_y, precision=_HIGHEST)


def warp_coefficients(inv: jax.Array, t: jax.Array, h: int, w: int):
  """(a, b, c, d, e, f): output pixel (y, x) samples input (sy, sx) with

  sx = a x + b y + c,  sy = d x + e y + f

  for the inverse map `inv` (flip, rotation, scale) about the image centre
  and the translation `t` (fractions of the size), pixel centres at
  integers, as torchvision's affine warps.
  """
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  ox, oy = cx + t[0] * w, cy + t[1] * h
  a, b, d, e = inv[0, 0], inv[0, 1], inv[1, 0], inv[1, 1]
  return (a, b, cx - a * ox - b * oy, d, e, cy - d * ox - e * oy)


def _interp_matrix(pos: jax.Array, n: int, reach: int) -> jax.Array:
  """(len(pos), n + 2 reach) linear-interpolation weights.

  Columns are positions -reach .. n + reach - 1 of a line whose values
  beyond that range are zero. The triangle kernel sums to one over the
  integers, so a sample is an exact interpolation, and one within a pixel
  of the content's border fades to the fill value 0, as bilinear sampling
  with zero fill does.
  """
  grid = jnp.arange(-reach, n + reach, dtype=jnp.float32)
  return jnp.maximum(0.0, 1.0 - jnp.abs(pos[:, None] - grid[None, :]))


def _shift_lines(x: jax.Array, shift: jax.Array, axis: int,
                 reach: int) -> jax.Array:
  """Shifts every line of x (H, W, C) along `axis` by its own `shift`.

  Line k (index along the other spatial axis) becomes x(q + shift[k]) for
  q = -reach .. n + reach - 1, linearly interpolated, zero outside the
  image: a weighted sum of 2 reach + 1 static shifted copies (|shift| <
  reach), elementwise work with no gather.
  """
  m = jnp.arange(-reach, reach + 1, dtype=jnp.float32)
  weights = jnp.maximum(0.0, 1.0 - jnp.abs(shift[:, None] - m[None, :]))
  pad = [(0, 0)] * 3
  pad[axis] = (2 * reach, 2 * reach)
  xp = jnp.pad(x, pad)
  n = x.shape[axis] + 2 * reach
  out = None
  for k in range(2 * reach + 1):
    part = jax.lax.slice_in_dim(xp, k, k + n, axis=axis)
    wk = weights[:, k]
    wk = wk[:, None, None] if axis == 1 else wk[None, :, None]
    out = wk * part if out is None else out + wk * part
  return out


def shift_reach(cfg: AugmentConfig, size: int) -> int:
  """Largest per-line shift (pixels, +1) the rotation range needs.

  Pass 1 shifts row i by tan(angle) (i - centre); pass 2 shifts column x by
  sin(angle) / scale (x - centre). Static, so the shifted copies are too.
  """
  ang = math.radians(min(abs(cfg.rotate_deg), 89.0))
  slope = max(math.tan(ang), math.sin(ang) / max(min(cfg.scale), 1e-3))
  return int(math.ceil(slope * (size - 1) / 2.0)) + 1


_HIGHEST = jax.lax.Precision.HIGHEST


# ------------------------------------------------------------- colour ------


def _grey(x: jax.Array) -> jax.Array:
  return (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]


def rgb_to_hsv(x: jax.Array) -> jax.Array:
  """RGB -> HSV in [0, 1].

  The hue sector comes from argmax, not from `max == r` float equality:
  XLA may fuse (and FMA-contract) the two sides differently, and then an
  equality test silently picks the wrong sector on some shardings.
  """
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  arg = jnp.argmax(x, -1)
  v = jnp.max(x, -1)  # = x[arg]; max, not take_along_axis (a gather)
  mn = jnp.min(x, -1)
  d = v - mn
  s = jnp.where(v > 0, d / jnp.where(v > 0, v, 1.0), 0.0)
  dd = jnp.where(d > 0, d, 1.0)
  h = jnp.where(arg == 0, (g - b) / dd,
                jnp.where(arg == 1, 2.0 + (b - r) / dd, 4.0 + (r - g) / dd))
  h = jnp.where(d > 0, (h / 6.0) % 1.0, 0.0)
  return jnp.stack([h, s, v], -1)


def hsv_to_rgb(x: jax.Array) -> jax.Array:
  """HSV -> RGB with the closed form c = v - v s clip(min(k, 4 - k), 0, 1)."""
  h, s, v = x[..., 0:1], x[..., 1:2], x[..., 2:3]
  k = (jnp.array([5.0, 3.0, 1.0]) + 6.0 * h) % 6.0
  return v - v * s * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)


def color_jitter(key: jax.Array, x: jax.Array, cfg: AugmentConfig):
  """Brightness, contrast, saturation, hue (torchvision's definitions)."""
  kb, kc, ks, kh = jax.random.split(key, 4)

  def factor(k, amount):
    return jax.random.uniform(k, (), minval=max(0.0, 1 - amount),
                              maxval=1 + amount)

  if cfg.brightness:
    x = jnp.clip(x * factor(kb, cfg.brightness), 0.0, 1.0)
  if cfg.contrast:
    m = jnp.mean(_grey(x))
    x = jnp.clip(m + factor(kc, cfg.contrast) * (x - m), 0.0, 1.0)
  if cfg.saturation:
    gr = _grey(x)
    x = jnp.clip(gr + factor(ks, cfg.saturation) * (x - gr), 0.0, 1.0)
  if cfg.hue:
    shift = jax.random.uniform(kh, (), minval=-cfg.hue, maxval=cfg.hue)
    hsv = rgb_to_hsv(x)
    x = hsv_to_rgb(hsv.at[..., 0].set((hsv[..., 0] + shift) % 1.0))
  return x


def gaussian_blur(key: jax.Array, x: jax.Array, cfg: AugmentConfig):
  """Separable k x k Gaussian blur, reflect padding (torchvision)."""
  k = cfg.blur_kernel
  sigma = jax.random.uniform(key, (), minval=cfg.blur_sigma[0],
                             maxval=cfg.blur_sigma[1])
  r = jnp.arange(k, dtype=jnp.float32) - (k - 1) / 2.0
  w = jnp.exp(-0.5 * (r / sigma) ** 2)
  w = w / w.sum()
  pad = k // 2
  xp = jnp.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
  h, wd = x.shape[:2]
  rows = sum(w[i] * xp[i:i + h, :, :] for i in range(k))
  return sum(w[i] * rows[:, i:i + wd, :] for i in range(k))


# ------------------------------------------------------------- entry -------


def augment_one(key: jax.Array, x: jax.Array, cfg: AugmentConfig,
                color: bool = True) -> jax.Array:
  """Augments one float image (H, W, C) in [0, 1]."""
  kg, kc, kb = jax.random.split(key, 3)
  inv, t = _affine_params(kg, cfg)
  x = _warp(x, inv, t, shift_reach(cfg, max(x.shape[:2])))
  if color and x.shape[-1] == 3:
    x = color_jitter(kc, x, cfg)
  if cfg.blur_kernel > 1 and cfg.blur_sigma[1] > 0:
    x = gaussian_blur(kb, x, cfg)
  return x


def _per_image(fn, x: jax.Array, key: jax.Array) -> jax.Array:
  """Applies fn(key_i, image_i) over all leading axes, one key per image.

  Nested vmaps (no reshape), so a batch axis keeps its sharding; the key of
  image (i, j, ...) is key folded with i, then j, ... .
  """
  if x.ndim == 3:
    return fn(key, x)
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(
      jnp.arange(x.shape[0]))
  return jax.vmap(lambda k, xi: _per_image(fn, xi, k))(keys, x)


def prepare(images: jax.Array, size: int, key: jax.Array | None = None,
            cfg: AugmentConfig | None = None, color: bool = True,
            channels: int | None = None) -> jax.Array:
  """uint8 (B, [N,] H, W, C) -> normalised float32 model input.

  Args:
    images: uint8 batch; an extra N axis (multi-reference) is allowed.
    size: the model's image size.
    key: when given (with `cfg`), augment each image independently.
    cfg: augmentation strengths.
    color: apply colour jitter (off for heatmaps).
    channels: tile one-channel inputs to this many channels (teacher input).

  Returns:
    float32 (B, [N,] size, size, C') normalised with ImageNet statistics.
  """
  x = resize(to_float(images), size)
  if key is not None and cfg is not None:
    x = _per_image(lambda k, im: augment_one(k, im, cfg, color), x, key)
  x = normalize(x)
  if channels and x.shape[-1] == 1 and channels > 1:
    x = jnp.repeat(x, channels, axis=-1)
  return x
