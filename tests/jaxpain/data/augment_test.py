"""On-device augmentation: exact geometry, colour maths, independence."""

import colorsys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from jaxpain.data import augment as A

_jit = jax.jit(A.prepare, static_argnums=(1,),
               static_argnames=("cfg", "color", "channels"))


def prepare(images, size, key=None, cfg=None, **kw):
  """A.prepare, jitted (eager vmapped ops are slow to dispatch)."""
  return _jit(images, size, key, cfg=cfg, **kw)


OFF = dict(flip_prob=0.0, rotate_deg=0.0, translate=0.0, scale=(1.0, 1.0),
           brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0,
           blur_kernel=1)


@pytest.fixture(scope="module")
def images():
  return jnp.asarray(np.random.RandomState(0).randint(
      0, 256, (4, 24, 24, 3)).astype(np.uint8))


def test_all_off_is_resize_and_normalise(images):
  plain = prepare(images, 16)
  aug = prepare(images, 16, jax.random.key(0), A.AugmentConfig(**OFF))
  np.testing.assert_allclose(aug, plain, atol=1e-6)
  # ImageNet normalisation of the resized image.
  raw = jax.image.resize(images / 255.0, (4, 16, 16, 3), "bilinear",
                         antialias=True)
  want = (raw - np.array(A.IMAGENET_MEAN)) / np.array(A.IMAGENET_STD)
  np.testing.assert_allclose(plain, want, atol=1e-5)


def test_flip_is_an_exact_mirror(images):
  cfg = A.AugmentConfig(**dict(OFF, flip_prob=1.0))
  out = prepare(images, 24, jax.random.key(0), cfg)
  np.testing.assert_allclose(out, prepare(images, 24)[:, :, ::-1], atol=1e-5)


def test_rotation_by_small_angle_moves_pixels_but_keeps_the_centre():
  img = np.zeros((1, 25, 25, 3), np.uint8)
  img[:, 12, :, :] = 255  # a horizontal line through the centre
  cfg = A.AugmentConfig(**dict(OFF, rotate_deg=30.0))
  out = np.asarray(prepare(jnp.asarray(img), 25, jax.random.key(3), cfg))
  base = np.asarray(prepare(jnp.asarray(img), 25))
  assert np.allclose(out[0, 12, 12], base[0, 12, 12], atol=1e-4)
  assert not np.allclose(out[0, 12, 2], base[0, 12, 2], atol=1e-2)


def test_hsv_round_trip_and_reference():
  x = np.random.RandomState(1).rand(50, 3).astype(np.float32)
  hsv = np.asarray(A.rgb_to_hsv(jnp.asarray(x)))
  want = np.array([colorsys.rgb_to_hsv(*p) for p in x])
  np.testing.assert_allclose(hsv, want, atol=1e-5)
  np.testing.assert_allclose(A.hsv_to_rgb(hsv), x, atol=1e-5)


def test_blur_keeps_constant_images_and_smooths_noise():
  flat = jnp.full((1, 16, 16, 3), 100, jnp.uint8)
  cfg = A.AugmentConfig(**dict(OFF, blur_kernel=3, blur_sigma=(1.0, 1.0)))
  np.testing.assert_allclose(prepare(flat, 16, jax.random.key(0), cfg),
                             prepare(flat, 16), atol=1e-5)
  noise = jnp.asarray(np.random.RandomState(2).randint(
      0, 256, (1, 16, 16, 3)).astype(np.uint8))
  assert (prepare(noise, 16, jax.random.key(0), cfg).std()
          < prepare(noise, 16).std())


def test_each_image_gets_its_own_draw_and_draws_are_reproducible(images):
  same = jnp.repeat(images[:1], 4, axis=0)
  cfg = A.AugmentConfig()
  a = np.asarray(prepare(same, 16, jax.random.key(5), cfg))
  b = np.asarray(prepare(same, 16, jax.random.key(5), cfg))
  c = np.asarray(prepare(same, 16, jax.random.key(6), cfg))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a[0], a[1])  # rows differ
  assert not np.allclose(a, c)  # keys differ


def test_multi_reference_axis_and_one_channel_tiling():
  refs = jnp.zeros((2, 3, 20, 20, 3), jnp.uint8)
  cfg = A.AugmentConfig(**dict(OFF, flip_prob=0.5))
  assert prepare(refs, 16, jax.random.key(0), cfg).shape == (2, 3, 16, 16, 3)
  heat = jnp.full((2, 20, 20, 1), 255, jnp.uint8)
  out = prepare(heat, 16, channels=3)
  assert out.shape == (2, 16, 16, 3)
  np.testing.assert_allclose(out[..., 0], out[..., 2])


# --- the gather-free warp against direct bilinear sampling -----------------


def _bilinear_reference(image, inv, t):
  """The warp as direct bilinear sampling (4 gathers), zero fill: what the
  two-pass matmul warp replaces (jaxpain before the TPU compile work)."""
  h, w, c = image.shape
  yy, xx = np.meshgrid(np.arange(h, dtype=np.float32),
                       np.arange(w, dtype=np.float32), indexing="ij")
  inv, t = np.asarray(inv), np.asarray(t)
  ox = xx - (w - 1) / 2.0 - t[0] * w
  oy = yy - (h - 1) / 2.0 - t[1] * h
  sx = inv[0, 0] * ox + inv[0, 1] * oy + (w - 1) / 2.0
  sy = inv[1, 0] * ox + inv[1, 1] * oy + (h - 1) / 2.0
  x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
  fx, fy = sx - x0, sy - y0
  out = np.zeros((h, w, c), np.float32)
  image = np.asarray(image)
  for dy, wy in ((0, 1 - fy), (1, fy)):
    for dx, wx in ((0, 1 - fx), (1, fx)):
      yi, xi = y0 + dy, x0 + dx
      inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
      val = image[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
      out += val * (wy * wx * inside)[..., None]
  return out


@pytest.fixture(scope="module")
def smooth():
  """A smooth 48 px RGB image in [0, 1] (faces are smooth at this scale)."""
  coarse = np.random.RandomState(3).rand(6, 6, 3)
  img = np.asarray(jax.image.resize(coarse, (48, 48, 3), "cubic"))
  return (img - img.min()) / (img.max() - img.min())


_warp = jax.jit(A._warp, static_argnums=(3,))


def _draws(cfg, n):
  return [A._affine_params(jax.random.key(k), cfg) for k in range(n)]


def test_warp_without_rotation_is_exact_bilinear(smooth):
  cfg = A.AugmentConfig(flip_prob=0.5, rotate_deg=0.0, translate=0.2,
                        scale=(0.8, 1.2))
  for inv, t in _draws(cfg, 8):
    np.testing.assert_allclose(
        _warp(smooth, inv, t, A.shift_reach(cfg, 48)),
        _bilinear_reference(smooth, inv, t), atol=2e-5)


@pytest.mark.parametrize("deg", [5.0, 15.0])
def test_rotated_warp_matches_bilinear_within_tolerance(smooth, deg):
  cfg = A.AugmentConfig(flip_prob=0.3, rotate_deg=deg, translate=0.1,
                        scale=(0.9, 1.1))
  ones = np.ones_like(smooth)
  for inv, t in _draws(cfg, 6):
    got = np.asarray(_warp(smooth, inv, t, A.shift_reach(cfg, 48)))
    want = _bilinear_reference(smooth, inv, t)
    # Away from the zero-filled border (1 px), the shears' extra linear
    # interpolation is sub-pixel smoothing: small differences only.
    inner = ndimage.binary_erosion(
        _bilinear_reference(ones, inv, t)[..., 0] > 0.999)
    assert np.abs(got - want).mean() < 0.01
    assert np.abs(got - want)[inner].max() < 0.04
    # Same geometry: the filled (zero) region is the same up to its edge.
    assert np.abs((got.max(-1) > 0.02).mean() - (want.max(-1) > 0.02).mean()
                  ) < 0.03


def test_augmentation_compiles_to_no_gather():
  images = jnp.zeros((2, 40, 40, 3), jnp.uint8)
  fn = jax.jit(lambda x, k: A.prepare(x, 32, k, A.AugmentConfig()))
  text = fn.lower(images, jax.random.key(0)).compile().as_text()
  assert "gather(" not in text
