"""The denoiser: shapes, size, the learned nulls, bounded outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxpain.temporal import model, tokens

K = 13


def _inputs(cfg, b=2, seed=0):
  ks = jax.random.split(jax.random.key(seed), 4)
  fs, w = cfg.frames_per_token, cfg.window
  return dict(
      x=jax.random.normal(ks[0], (b, w, fs * K)),
      sigma=jnp.exp(jax.random.normal(ks[1], (b, w))),
      stim=jax.random.uniform(ks[2], (b, (cfg.stim_history + w) * fs)),
      expr=jax.random.normal(ks[3], (b,)),
      emotion=jnp.arange(b) % 8)


@nnx.jit
def _apply(net, x, sigma, stim, expr, emotion, drop):
  return net(x, sigma, stim, expr, emotion, drop)


@pytest.fixture(scope="module")
def tiny():
  cfg = model.TemporalConfig(variant="tiny", window=6, stim_history=2)
  norm = tokens.Normaliser.identity(K)
  return model.create(cfg, norm, seed=0)


def test_base_variant_has_about_five_million_parameters():
  cfg = model.TemporalConfig(variant="base")
  abstract = nnx.eval_shape(
      lambda: model.build(cfg, tokens.Normaliser.identity(K)))
  n = model.num_params(abstract)
  assert 4.5e6 < n < 6.5e6


def test_dropped_signal_is_ignored_and_null_is_learned(tiny):
  inp = _inputs(tiny.cfg)
  keep = jnp.zeros((2, 3), bool)
  for i, name in enumerate(("emotion", "expr", "stim")):
    drop = keep.at[:, i].set(True)
    other = dict(inp)
    other[name] = (inp[name] + 3 if name != "emotion"
                   else (inp[name] + 1) % 8)
    a = _apply(tiny, inp["x"], inp["sigma"], inp["stim"], inp["expr"],
               inp["emotion"], drop)
    b = _apply(tiny, other["x"], other["sigma"], other["stim"],
               other["expr"], other["emotion"], drop)
    np.testing.assert_allclose(a, b, atol=1e-6)  # dropped: no influence
  # The nulls are parameters (the same in training and sampling).
  params = nnx.state(tiny, nnx.Param)
  assert "stim_null" in params and "expr_null" in params
  assert tiny.emotion_emb[...].shape[0] == tiny.cfg.num_emotions + 1


def test_denoiser_shape_and_skip_limit(tiny):
  inp = _inputs(tiny.cfg)
  cond = tiny.condition(inp["stim"], inp["expr"], inp["emotion"],
                        jnp.zeros((2, 3), bool))
  d = tiny.denoise(inp["x"], inp["sigma"], cond)
  assert d.shape == inp["x"].shape
  # At a tiny sigma, D(x) ~ x whatever F does (EDM skip connection).
  small = jnp.full_like(inp["sigma"], 1e-4)
  np.testing.assert_allclose(tiny.denoise(inp["x"], small, cond), inp["x"],
                             atol=1e-3)


def test_bound_maps_to_au_ranges():
  norm = tokens.Normaliser.fit(
      np.random.default_rng(0).uniform(0, 3, (50, K)), np.ones(4),
      np.ones(4), np.array([5.0] * 12 + [1.0]))
  z = jnp.linspace(-50, 50, 7)[:, None] * jnp.ones((1, K))
  au = norm.au_from_model(z)
  assert float(au.min()) == 0.0
  assert np.allclose(au[-1], [5.0] * 12 + [1.0])
  lo, hi = norm.bounds()
  np.testing.assert_allclose(norm.au_from_model(lo), 0.0, atol=1e-5)
  np.testing.assert_allclose(norm.au_from_model(hi), norm.au_max, atol=1e-5)


def test_tokens_round_trip():
  frames = jnp.arange(2 * 8 * K, dtype=jnp.float32).reshape(2, 8, K)
  t = tokens.to_tokens(frames, 4)
  assert t.shape == (2, 2, 4 * K)
  np.testing.assert_array_equal(tokens.from_tokens(t, 4), frames)
  with pytest.raises(ValueError):
    tokens.to_tokens(frames[:, :7], 4)
