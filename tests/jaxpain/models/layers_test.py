"""layers: GELU and LayerNorm with written-out backward passes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpain.models import layers


def _close(got, want, tol=1e-5):
  jax.tree.map(lambda p, q: np.testing.assert_allclose(
    np.asarray(p, np.float32), np.asarray(q, np.float32), rtol=tol,
    atol=tol), got, want)


def test_gelu_is_exact_erf_gelu_with_its_true_gradient():
  x = jnp.linspace(-6.0, 6.0, 301)
  ref = lambda x: jax.nn.gelu(x, approximate=False)  # noqa: E731
  run = jax.jit(lambda x: (layers.gelu(x), ref(x),
                           jax.grad(lambda x: layers.gelu(x).sum())(x),
                           jax.grad(lambda x: ref(x).sum())(x)))
  got, want, g_got, g_want = run(x)
  np.testing.assert_array_equal(got, want)
  _close(g_got, g_want)


def test_gelu_gradient_keeps_bfloat16():
  x = jnp.linspace(-3.0, 3.0, 64, dtype=jnp.bfloat16)
  g, want = jax.jit(lambda x: (
    jax.grad(lambda x: layers.gelu(x).astype(jnp.float32).sum())(x),
    jax.grad(lambda x: jax.nn.gelu(x.astype(jnp.float32),
                                   approximate=False).sum())(x)))(x)
  assert g.dtype == jnp.bfloat16
  _close(g, want, tol=2e-2)


def _ln_reference(x, scale, bias, eps=1e-5):
  xf = x.astype(jnp.float32)
  mean = xf.mean(-1, keepdims=True)
  var = jnp.square(xf - mean).mean(-1, keepdims=True)
  y = (xf - mean) * jax.lax.rsqrt(var + eps) * scale + bias
  return y.astype(x.dtype)


@pytest.mark.parametrize('lead', [(), (3,)])
def test_layer_norm_value_and_gradients_match_autodiff(lead):
  ks = jax.random.split(jax.random.key(0), 4)
  x = 3.0 * jax.random.normal(ks[0], (4, 5, *lead, 16)) + 1.0
  scale = 1.0 + 0.3 * jax.random.normal(ks[1], (*lead, 16))
  bias = 0.3 * jax.random.normal(ks[2], (*lead, 16))
  ct = jax.random.normal(ks[3], x.shape)

  @jax.jit
  def run(x, scale, bias, ct):
    got, pull = jax.vjp(lambda *a: layers.layer_norm(*a, 1e-5), x, scale,
                        bias)
    want, pull_ref = jax.vjp(_ln_reference, x, scale, bias)
    return got, want, pull(ct), pull_ref(ct)

  got, want, g_got, g_want = run(x, scale, bias, ct)
  _close(got, want)
  _close(g_got, g_want, tol=1e-4)


def test_layer_norm_module_uses_its_parameters():
  from flax import nnx
  ln = layers.LayerNorm(8, rngs=nnx.Rngs(0))
  ln.scale.set_value(jnp.full((8,), 2.0))
  ln.bias.set_value(jnp.full((8,), 0.5))
  x = jnp.arange(16.0).reshape(2, 8)
  _close(ln(x), _ln_reference(x, 2.0, 0.5))


def test_rekey_changes_the_prng_not_the_dropout_rate():
  key = jax.random.key(7)
  assert layers.rekey(key, 'threefry') is key
  for impl in ('rbg', 'unsafe_rbg'):
    k = layers.rekey(key, impl)
    assert impl in str(jax.random.key_impl(k))
    keep = jax.jit(lambda k: jax.random.bernoulli(k, 0.9, (4096,)))(k)
    assert 0.87 < float(keep.mean()) < 0.93
  with pytest.raises(ValueError, match='PRNG impl'):
    layers.rekey(key, 'philox')
