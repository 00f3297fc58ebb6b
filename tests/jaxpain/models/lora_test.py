"""LoRA semantics, the shared-base batched pass, filters in training."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxpain import convert
from jaxpain.models import lora, vitpain
from tests.jaxpain.models.builders import encoder_fn, forward_fn, images, model


def _base_only(model):
  cfg = dataclasses.replace(model.encoder.cfg, lora=None, num_adapters=1)
  return convert.vit_from_timm(cfg, convert.export_backbone(model.encoder))


def test_zero_b_leaves_base_output_unchanged():
  m = model()
  enc = encoder_fn()
  base = _base_only(m)
  x = jnp.asarray(images(4))
  ref = enc(base, x, (0,))
  assert np.abs(enc(m.encoder, x, (0,)) - ref).max() > 1e-2
  for _, layer in lora.lora_layers(m):
    layer.lora_b.set_value(jnp.zeros_like(layer.lora_b[...]))
  for groups in ((0,), (1,), (0, 1)):
    np.testing.assert_allclose(enc(m.encoder, x, groups), ref, atol=1e-6)


def test_merge_equals_unmerged_and_unmerge_is_exact():
  m = model()
  x, n = images(2, seed=0), images(2, seed=1)
  fwd = forward_fn()
  before = fwd(m, x, n)
  lora.merge(m)
  assert lora.is_merged(m)
  merged = fwd(m, x, n)
  for k in ('features', 'pspi', 'au'):
    np.testing.assert_allclose(merged[k], before[k], atol=1e-4, err_msg=k)
  lora.unmerge(m)
  assert not lora.is_merged(m)
  after = fwd(m, x, n)
  for k in before:
    np.testing.assert_array_equal(after[k], before[k])


def test_shared_base_batched_pass_equals_two_separate_passes():
  m, enc = model(), encoder_fn()
  x, n = jnp.asarray(images(2, seed=2)), jnp.asarray(images(2, seed=3))
  # Groups interleave: rows [x0, n0, x1, n1] (pairs stay on one device).
  both = enc(m.encoder, jnp.stack([x, n], 1).reshape((4,) + x.shape[1:]),
             (0, 1))
  np.testing.assert_allclose(both[0::2], enc(m.encoder, x, (0,)), atol=1e-5)
  np.testing.assert_allclose(both[1::2], enc(m.encoder, n, (1,)), atol=1e-5)
  # Same weights, two stored bases and two separate encoder calls.
  cfg = dataclasses.replace(m.cfg, shared_base=False)
  separate = convert.vitpain_from_checkpoint(cfg, convert.export_vitpain(m))
  fwd = forward_fn()
  a, b = fwd(m, x, n), fwd(separate, x, n)
  for k in ('features', 'pspi', 'au', 'binary_logits'):
    np.testing.assert_allclose(a[k], b[k], atol=1e-5, err_msg=k)


@pytest.mark.parametrize('compat', [False, True])
def test_optimizer_on_trainable_filter_leaves_base_frozen(compat):
  m = model(official_compat=compat)
  x, n = jnp.asarray(images(2, seed=4)), jnp.asarray(images(2, seed=5))
  opt = nnx.Optimizer(m, optax.sgd(0.1), wrt=vitpain.trainable_filter)
  not_trained = nnx.All(nnx.Param, nnx.Not(vitpain.trainable_filter))
  frozen = jax.tree.map(np.array, nnx.state(m, not_trained))
  before = jax.tree.map(np.array, nnx.state(m, vitpain.trainable_filter))

  def loss(m):
    out = m(x, n)
    return jnp.mean((out['pspi'] - 0.3) ** 2) + jnp.mean(out['au'])

  diff = nnx.DiffState(0, vitpain.trainable_filter)
  step = nnx.jit(lambda m, opt: opt.update(
    m, nnx.grad(loss, argnums=diff)(m)))
  step(m, opt)
  jax.tree.map(np.testing.assert_array_equal, frozen,
               jax.tree.map(np.array, nnx.state(m, not_trained)))
  after = nnx.state(m, vitpain.trainable_filter)
  changed = {
    p for (p, a), (_, b) in zip(nnx.to_flat_state(before),
                                nnx.to_flat_state(after), strict=True)
    if not np.array_equal(a, np.asarray(b))}
  assert any('lora_b' in p for p in changed)
  assert any('pspi_head' in p for p in changed)
  assert any('queries' in p for p in changed) != compat


def test_remat_gives_same_outputs_and_grads():
  m, rem = model(use_neutral=False), model(use_neutral=False, remat=True)
  x = jnp.asarray(images(2, seed=6))

  def loss(m):
    return jnp.sum(m(x)['features'] ** 2)

  grad = nnx.jit(nnx.grad(loss, argnums=nnx.DiffState(0, vitpain.lora_filter)))
  g1, g2 = grad(m), grad(rem)
  # Same math, different fusions: equal up to float32 rounding (relative).
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
    a, b, rtol=1e-5, atol=1e-5), g1, g2)


def test_lora_dropout_acts_on_adapter_input_only():
  x = jnp.asarray(images(2, seed=7))
  both = nnx.jit(lambda m: (m(x, deterministic=False)['features'],
                            m(x)['features']))
  quiet = model(head_dropout=0.0, lora_dropout=0.0, use_neutral=False)
  a, b = both(quiet)
  np.testing.assert_allclose(a, b, atol=1e-6)
  noisy = model(head_dropout=0.0, lora_dropout=0.5, use_neutral=False)
  a, b = both(noisy)
  assert np.abs(a - b).max() > 1e-3


def _reference_lora(x, w, a, b, scale, keep=None, rate=0.0):
  """peft's LoRA, differentiated by autodiff: x W + scale (drop(x) A) B."""
  xd = x if keep is None else jnp.where(keep, x / (1 - rate), 0.0)
  return (jnp.einsum('gmi,io->gmo', x, w)
          + jnp.einsum('gmr,gro->gmo', jnp.einsum('gmi,gir->gmr', xd, a), b)
          * scale)


def _factors(seed, g=2, m=5, i=6, r=3, o=4):
  ks = jax.random.split(jax.random.key(seed), 5)
  return (jax.random.normal(ks[0], (g, m, i)), jax.random.normal(ks[1], (i, o)),
          jax.random.normal(ks[2], (g, i, r)), jax.random.normal(ks[3], (g, r, o)),
          jax.random.normal(ks[4], (g, m, o)))


def _vjp(f, args, wrt, ct):
  """Value and cotangents of f w.r.t. the args at positions `wrt` (jitted:
  one compilation instead of one per operation)."""
  @jax.jit
  def run(args, ct):
    def part(*d):
      return f(*[d[wrt.index(i)] if i in wrt else v
                 for i, v in enumerate(args)])
    out, pull = jax.vjp(part, *[args[i] for i in wrt])
    return out, pull(ct)
  return run(args, ct)


def _assert_close(got, want):
  jax.tree.map(lambda p, q: np.testing.assert_allclose(p, q, rtol=1e-5,
                                                       atol=1e-5), got, want)


# (0, 1, 2, 3): everything trained (train_base); (2, 3): LoRA only, frozen
# base; (2, 3) without x: the patch embedding, whose input is the images.
WRT = [(0, 1, 2, 3), (0, 2, 3), (2, 3)]


@pytest.mark.parametrize('wrt', WRT)
def test_folded_dense_value_and_gradients_match_autodiff(wrt):
  x, w, a, b, ct = _factors(0)
  _assert_close(
    _vjp(lambda *v: lora.folded_dense(*v, 2.0), (x, w, a, b), wrt, ct),
    _vjp(lambda *v: _reference_lora(*v, 2.0), (x, w, a, b), wrt, ct))


@pytest.mark.parametrize('wrt', WRT)
def test_lora_dense_with_dropout_matches_autodiff(wrt):
  x, w, a, b, ct = _factors(1)
  key, rate = jax.random.key(3), 0.3
  keep = jax.random.bernoulli(key, 1 - rate, x.shape)
  assert 0.5 < float(jnp.mean(keep)) < 0.9  # the mask does drop inputs
  _assert_close(
    _vjp(lambda *v: lora.lora_dense(*v, key, rate, 2.0), (x, w, a, b), wrt,
         ct),
    _vjp(lambda *v: _reference_lora(*v, 2.0, keep, rate), (x, w, a, b), wrt,
         ct))
