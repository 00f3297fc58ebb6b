"""On-device augmentation: exact geometry, colour maths, independence."""

import colorsys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
