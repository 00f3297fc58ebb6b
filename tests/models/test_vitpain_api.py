"""ViTPain API: output contract, filters, logical axis names, dtypes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxpain.models import layers, lora, vitpain

IMG = 32


def _model(**kw):
  cfg = vitpain.ViTPainConfig(variant='Ti/16', image_size=IMG, **kw)
  return vitpain.ViTPain(cfg, rngs=nnx.Rngs(params=0, dropout=1))


def _images(b=2, seed=0):
  return jax.random.normal(jax.random.key(seed), (b, IMG, IMG, 3))


def _count(model, flt):
  return sum(v.size for v in jax.tree.leaves(nnx.state(model, flt)))


@pytest.mark.parametrize('compat', [False, True])
def test_outputs_contract(compat):
  m = _model(official_compat=compat)
  x = _images()
  for neutral in (None, _images(seed=1)):
    out = m(x, neutral)
    assert out['pspi'].shape == (2,) and out['pspi_logit'].shape == (2,)
    assert out['binary_logits'].shape == (2, 3)
    assert out['au'].shape == (2, 6) and bool((out['au'] >= 0).all())
    assert out['features'].shape == (2, 64)
    assert out['tokens'].shape == (2, 1 + (IMG // 16) ** 2, 64)
    np.testing.assert_allclose(
      out['pspi'], jax.nn.sigmoid(out['pspi_logit']), rtol=1e-6)
    np.testing.assert_array_equal(out['features'], out['tokens'][:, 0])
    assert all(v.dtype == jnp.float32 for v in out.values())


def test_neutral_changes_prediction_and_dropout_is_random():
  m = _model()
  x = _images()
  a, b = m(x)['pspi'], m(x, _images(seed=1))['pspi']
  assert not np.allclose(a, b)
  d1 = m(x, deterministic=False)['pspi']
  d2 = m(x, deterministic=False)['pspi']
  assert not np.allclose(d1, d2)
  np.testing.assert_array_equal(m(x)['pspi'], a)


def test_filters_partition_parameters():
  for compat in (False, True):
    m = _model(official_compat=compat)
    total = _count(m, nnx.Param)
    frozen, lo, head = (_count(m, f) for f in (
      vitpain.frozen_filter, vitpain.lora_filter, vitpain.head_filter))
    train = _count(m, vitpain.trainable_filter)
    assert train == lo + head
    queries = 6 * 64
    assert total == frozen + train + (queries if compat else 0)
    # The frozen filter is exactly the backbone (stored once).
    enc = _count(m.encoder, nnx.Param) - _count(m.encoder, lora.LoRAParam)
    assert frozen == enc
    state = nnx.state(m, vitpain.trainable_filter)
    au = [p for p, _ in nnx.to_flat_state(state) if 'queries' in p]
    assert bool(au) != compat


def test_every_param_has_logical_axis_names():
  m = _model()
  allowed = {None, 'embed', 'mlp', 'heads', 'qkv', 'kv', 'patch', 'norm',
             'lora_rank', 'adapter', 'au'}
  for path, var in nnx.to_flat_state(nnx.state(m, nnx.Param)):
    names = var.get_metadata().get('out_sharding')
    assert names is not None and len(names) == var.shape.__len__(), path
    assert set(names) <= allowed, (path, names)
  assert not any(isinstance(v, layers.BaseParam) and 'lora' in str(p)
                 for p, v in nnx.to_flat_state(nnx.state(m)))


def test_bfloat16_compute_close_to_float32():
  x, n = _images(), _images(seed=1)
  f32 = _model()(x, n)
  bf = _model(dtype='bfloat16')(x, n)
  assert bf['pspi'].dtype == jnp.float32
  np.testing.assert_allclose(bf['features'], f32['features'], atol=0.1)
  np.testing.assert_allclose(bf['pspi'], f32['pspi'], atol=0.02)


def test_heatmap_single_channel_is_replicated():
  m = _model()
  h = jax.random.uniform(jax.random.key(3), (2, IMG, IMG, 1))
  a = m(h)['features']
  b = m(jnp.repeat(h, 3, axis=-1))['features']
  np.testing.assert_array_equal(a, b)
  t = vitpain.teacher_config(m.cfg)
  assert t.variant == m.cfg.variant and t.in_channels == 3


def test_bad_inputs_raise():
  m = _model(use_neutral=False)
  with pytest.raises(ValueError, match='use_neutral'):
    m(_images(), _images())
  with pytest.raises(ValueError, match='multiple of patch'):
    m(jnp.zeros((1, 40, 40, 3)))
  with pytest.raises(ValueError, match='unknown variant'):
    vitpain.ViTPainConfig(variant='X/16')
