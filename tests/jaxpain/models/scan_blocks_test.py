"""scan_blocks: the scanned backbone computes what the unrolled one does.

Same parameters (stored per block either way), same outputs and the same
gradients, with dropout on (the per-layer keys are the same), for both
token paths and both LoRA layouts.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxpain import convert
from jaxpain.models import vitpain
from tests.jaxpain.models.builders import images, random_state_dict


def _pair(**kw):
  cfg = vitpain.ViTPainConfig(variant='Ti/16', image_size=32,
                              cross_attn_heads=2, **kw)
  sd = random_state_dict(cfg)
  scanned = convert.vitpain_from_checkpoint(cfg, sd)
  unrolled = convert.vitpain_from_checkpoint(
    dataclasses.replace(cfg, scan_blocks=False), sd)
  return scanned, unrolled


@nnx.jit
def _forward(m, x, n):
  return m(x, n)


@nnx.jit
def _loss_and_grads(m, x, n):
  def loss(m):
    out = m(x, n, deterministic=False, key=jax.random.key(3))
    return jnp.sum(out['pspi_logit'] ** 2) + jnp.sum(out['au'])

  return nnx.value_and_grad(loss)(m)


@pytest.mark.parametrize('compat,shared', [(False, True), (True, False)],
                         ids=['dinov3-shared', 'official-towers'])
def test_scan_forward_matches_unrolled(compat, shared):
  scanned, unrolled = _pair(official_compat=compat, shared_base=shared)
  assert len(scanned.encoder.blocks) == 2
  x, n = jnp.asarray(images(2)), jnp.asarray(images(2, seed=1))
  out_s, out_u = _forward(scanned, x, n), _forward(unrolled, x, n)
  for k in ('pspi_logit', 'au', 'features', 'tokens'):
    np.testing.assert_allclose(out_s[k], out_u[k], rtol=1e-5, atol=1e-5)


def test_scan_gradients_match_unrolled():
  scanned, unrolled = _pair()
  x, n = jnp.asarray(images(2)), jnp.asarray(images(2, seed=1))
  loss_s, g_s = _loss_and_grads(scanned, x, n)
  loss_u, g_u = _loss_and_grads(unrolled, x, n)
  np.testing.assert_allclose(loss_s, loss_u, rtol=1e-5)
  flat_s = dict(nnx.to_flat_state(g_s))
  flat_u = dict(nnx.to_flat_state(g_u))
  assert flat_s.keys() == flat_u.keys()
  lora_grads = 0
  for path, v in flat_s.items():
    a, b = np.asarray(v.get_value()), np.asarray(flat_u[path].get_value())
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5,
                               err_msg='/'.join(map(str, path)))
    lora_grads += 'lora_b' in path and float(np.abs(a).max()) > 0
  assert lora_grads > 0  # the comparison covered real adapter gradients
