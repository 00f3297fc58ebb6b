"""ViTPain API: output contract, filters, axis names, init, dtypes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxpain import convert
from jaxpain.models import layers, lora, vitpain
from tests.jaxpain.models.builders import (
  config,
  encoder_fn,
  forward_fn,
  fresh_model,
  images,
  model,
)

D = 32  # width of 'mu/16'


def _count(m, flt):
  return sum(v.size for v in jax.tree.leaves(nnx.state(m, flt)))


@pytest.mark.parametrize('compat', [False, True], ids=['dinov3', 'official'])
def test_outputs_contract(compat):
  m = model(official_compat=compat)
  x = images(2)
  outs = []
  for neutral in (None, images(2, seed=1)):
    out = forward_fn()(m, x, neutral)
    outs.append(out)
    assert out['pspi'].shape == (2,) and out['pspi_logit'].shape == (2,)
    assert out['binary_logits'].shape == (2, 3)
    assert out['au'].shape == (2, 6) and bool((out['au'] >= 0).all())
    assert out['features'].shape == (2, D)
    assert out['tokens'].shape == (2, 1 + 2 * 2, D)
    np.testing.assert_allclose(
      out['pspi'], jax.nn.sigmoid(out['pspi_logit']), rtol=1e-6)
    np.testing.assert_array_equal(out['features'], out['tokens'][:, 0])
    assert all(v.dtype == jnp.float32 for v in out.values())
  assert np.abs(outs[0]['features'] - outs[1]['features']).max() > 1e-3


def test_fresh_init_follows_torch_defaults():
  m = fresh_model()
  lin = m.pspi_head.linears[1]
  bound = 512 ** -0.5
  assert float(jnp.abs(lin.kernel[...]).max()) <= bound
  assert float(jnp.abs(lin.kernel[...]).max()) > 0.9 * bound
  assert float(jnp.abs(m.cross_attn.in_bias[...]).max()) == 0.0
  q = np.asarray(m.au_head.queries[...])
  assert 0.7 < q.std() < 1.3
  for _, layer in lora.lora_layers(m):
    assert float(jnp.abs(layer.lora_b[...]).max()) == 0.0
    a = layer.lora_a[...]
    fan_in = a.size // (a.shape[0] * a.shape[-1])
    assert float(jnp.abs(a).max()) <= fan_in ** -0.5
  np.testing.assert_allclose(m.encoder.blocks[0].gamma_1[...], 1e-5)
  out = m(jnp.asarray(images(1)))
  assert bool(jnp.isfinite(out['pspi']).all())


def test_filters_partition_parameters():
  for compat in (False, True):
    m = model(official_compat=compat)
    total = _count(m, nnx.Param)
    frozen, lo, head = (_count(m, f) for f in (
      vitpain.frozen_filter, vitpain.lora_filter, vitpain.head_filter))
    assert _count(m, vitpain.trainable_filter) == lo + head
    assert total == frozen + lo + head + (6 * D if compat else 0)
    # The frozen filter is exactly the backbone base, stored once.
    assert frozen == _count(m.encoder, nnx.Param) - _count(
      m.encoder, lora.LoRAParam)
    heads = nnx.to_flat_state(nnx.state(m, vitpain.head_filter))
    assert all(p[0] != 'encoder' for p, _ in heads)
    assert any('queries' in p for p, _ in heads) != compat
    assert all('lora' in p[-1] for p, _ in nnx.to_flat_state(
      nnx.state(m, vitpain.lora_filter)))


def test_every_param_has_logical_axis_names():
  m = model()
  allowed = {None, *vitpain.LOGICAL_AXES}
  for path, var in nnx.to_flat_state(nnx.state(m, nnx.Param)):
    names = var.get_metadata().get('out_sharding')
    assert names is not None and len(names) == len(var.shape), path
    assert set(names) <= allowed, (path, names)
    if isinstance(var, lora.LoRAParam):
      assert names[0] == 'adapter' and 'lora_rank' in names
    elif isinstance(var, layers.BaseParam):
      assert 'lora_rank' not in names


def test_params_are_born_sharded_under_a_mesh():
  auto = (jax.sharding.AxisType.Auto,) * 2
  mesh = jax.make_mesh((2, 4), ('data', 'model'), axis_types=auto)
  rules = vitpain.logical_rules(embed='data', mlp='model', kv='model')
  cfg = config()
  with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
    m = nnx.eval_shape(lambda: vitpain.ViTPain(cfg, rngs=nnx.Rngs(0)))
    spec = nnx.get_partition_spec(nnx.state(m, nnx.Param))
  blk = spec['encoder']['blocks'][0]
  assert tuple(blk['fc1']['kernel'].get_value()) == ('data', 'model')
  assert tuple(blk['attn']['qkv']['kernel'].get_value()) == (
    'data', None, None, 'model')
  with pytest.raises(ValueError, match='unknown logical'):
    vitpain.logical_rules(batch='data')


def test_bfloat16_compute_close_to_float32():
  x, n = images(2), images(2, seed=1)
  f32 = forward_fn()(model(), x, n)
  bf = forward_fn()(model(dtype='bfloat16'), x, n)
  assert bf['pspi'].dtype == jnp.float32
  assert bf['tokens'].dtype == jnp.float32
  np.testing.assert_allclose(bf['pspi'], f32['pspi'], atol=0.03)
  np.testing.assert_allclose(bf['au'], f32['au'], atol=0.1)


def test_heatmap_single_channel_is_replicated():
  m = model(use_neutral=False)
  h = np.random.RandomState(3).rand(2, 32, 32, 1).astype(np.float32)
  a = forward_fn()(m, h, None)['features']
  b = forward_fn()(m, np.repeat(h, 3, axis=-1), None)['features']
  np.testing.assert_array_equal(a, b)
  t = vitpain.teacher_config(m.cfg)
  assert t.variant == m.cfg.variant and t.in_channels == 3
  # A 1-channel teacher imports the RGB patch kernel summed over channels.
  sd = convert.export_backbone(m.encoder)
  rgb = dataclasses.replace(m.encoder.cfg, lora=None, num_adapters=1)
  gray = dataclasses.replace(rgb, in_channels=1)
  a = encoder_fn()(convert.vit_from_timm(gray, sd), h, (0,))
  b = encoder_fn()(convert.vit_from_timm(rgb, sd), np.repeat(h, 3, -1), (0,))
  np.testing.assert_allclose(a, b, atol=1e-5)


def test_bad_inputs_raise():
  m = model(use_neutral=False)
  with pytest.raises(ValueError, match='use_neutral'):
    m(images(1), images(1))
  with pytest.raises(ValueError, match='multiple of patch'):
    m(jnp.zeros((1, 40, 40, 3)))
  with pytest.raises(ValueError, match='channels'):
    m(jnp.zeros((1, 32, 32, 2)))
  with pytest.raises(ValueError, match='unknown variant'):
    vitpain.ViTPainConfig(variant='X/16')
  with pytest.raises(ValueError, match='cross_attn_heads'):
    vitpain.ViTPainConfig(variant='mu/16', cross_attn_heads=5)
