"""attention: head-major softmax attention with a written-out backward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpain.models import attention


def _qkv(dtype=jnp.float32, b=2, h=3, n=7, d=8):
  ks = jax.random.split(jax.random.key(0), 4)
  q, k, v = (jax.random.normal(kk, (b, h, n, d), dtype) for kk in ks[:3])
  return q, k, v, jax.random.normal(ks[3], (b, h, n, d), dtype)


def _reference(q, k, v):
  """jax.nn.dot_product_attention (XLA) in its (B, N, heads, Dh) layout."""
  t = lambda x: x.transpose(0, 2, 1, 3)  # noqa: E731
  return t(jax.nn.dot_product_attention(t(q), t(k), t(v),
                                        implementation='xla'))


@jax.jit
def _value_and_cotangents(q, k, v, ct):
  def both(fn):
    out, pull = jax.vjp(fn, q, k, v)
    return out, pull(ct)
  return both(attention.attention), both(_reference)


def test_forward_equals_jax_xla_attention_and_gradients_match():
  (got, g_got), (want, g_want) = _value_and_cotangents(*_qkv())
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  for g, w in zip(g_got, g_want, strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_bfloat16_close_to_float32():
  q, k, v, _ = _qkv(jnp.bfloat16)
  got = jax.jit(attention.attention)(q, k, v)
  assert got.dtype == jnp.bfloat16
  want = jax.jit(_reference)(*(x.astype(jnp.float32) for x in (q, k, v)))
  np.testing.assert_allclose(got.astype(jnp.float32), want, atol=3e-2)


def test_queries_and_keys_may_differ_in_length():
  q = _qkv(n=5)[0]
  k, v = _qkv(n=9)[1:3]
  ct = jnp.ones_like(q)
  (got, g_got), (want, g_want) = _value_and_cotangents(q, k, v, ct)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  for g, w in zip(g_got, g_want, strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def _bnhd(x):
  return x.transpose(0, 2, 1, 3)


@pytest.mark.gpu
def test_cudnn_attention_matches_ours_in_bfloat16_on_gpu():
  """cuDNN's fused attention (the GPU default with 16-bit compute) and ours
  compute one function: forward and gradients, ViT shapes (N = 197)."""
  q, k, v, ct = _qkv(jnp.bfloat16, b=2, h=4, n=197, d=64)

  def loss(fn):
    return lambda q, k, v: jnp.sum(fn(q, k, v).astype(jnp.float32) * ct)

  def cudnn(q, k, v):
    return _bnhd(jax.nn.dot_product_attention(
      _bnhd(q), _bnhd(k), _bnhd(v), implementation='cudnn'))

  got = jax.jit(cudnn)(q, k, v)
  want = jax.jit(attention.attention)(q, k, v)
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(got.astype(jnp.float32),
                             want.astype(jnp.float32), atol=2e-2)
  g_got = jax.jit(jax.grad(loss(cudnn), argnums=(0, 1, 2)))(q, k, v)
  g_want = jax.jit(jax.grad(loss(attention.attention), argnums=(0, 1, 2)))(
    q, k, v)
  for a, b in zip(g_got, g_want, strict=True):
    a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    assert float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b)) < 2e-2


@pytest.mark.gpu
def test_model_with_cudnn_attention_close_to_float32_on_gpu():
  from tests.jaxpain.models.builders import forward_fn, images, model
  x, n = images(2), images(2, seed=1)
  f32 = forward_fn()(model(), x, n)
  gpu = forward_fn()(model(dtype='bfloat16', attention_impl='cudnn'), x, n)
  assert jax.devices()[0].platform == 'gpu'
  np.testing.assert_allclose(gpu['pspi'], f32['pspi'], atol=0.03)
  np.testing.assert_allclose(gpu['au'], f32['au'], atol=0.1)
