"""Streaming sampler: guidance equivalence, determinism, context, bounds."""

import dataclasses

import jax
import numpy as np
import pytest

from jaxpain.temporal import model, sampler, tokens
from synth import sequences as sq

K = sq.NUM_AUS
SCFG = sampler.SamplerConfig(context=2, num_levels=6, uncertainty=1.0)


@pytest.fixture(scope="module")
def net():
  cfg = model.TemporalConfig(variant="tiny", window=6, stim_history=2)
  rng = np.random.default_rng(0)
  norm = tokens.Normaliser.fit(rng.uniform(0, 2, (100, K)),
                               rng.uniform(0, 1, 100), rng.uniform(0, 9, 10),
                               sq.AU_MAX)
  net = model.create(cfg, norm, seed=1)
  # Fresh adaLN-Zero outputs are exactly zero (F = 0 whatever the
  # conditions); random weights make every path matter.
  from flax import nnx

  leaves, tree = jax.tree.flatten(nnx.state(net))
  draw = np.random.default_rng(7)
  noisy = [np.asarray(x) + 0.2 * draw.standard_normal(x.shape, np.float32)
           for x in leaves]
  nnx.update(net, jax.tree.unflatten(tree, noisy))
  return net


def _stim(b=2, t=64):
  return np.random.default_rng(1).uniform(0, 1, (b, t)).astype(np.float32)


CTX = np.minimum(np.random.default_rng(2).uniform(0, 2, (2, 8, K)),
                 sq.AU_MAX).astype(np.float32)


def _roll(net, scfg, seed=0):
  """Two streams from ground-truth context (compiles the steady chunk
  only; the first-chunk path is covered by the Stream test)."""
  return sampler.rollout(net, scfg, _stim(), [3.0, 9.0], [5, 2], seed=seed,
                         context_frames=CTX)


def test_guidance_weight_zero_gives_the_conditional_model(net):
  guided0 = _roll(net, dataclasses.replace(SCFG, guidance=(0.0, 0.0, 0.0)))
  plain = _roll(net, dataclasses.replace(SCFG, guidance=None))
  # Equal up to float rounding (a 4x batch vs 1x, over 7 chunks).
  np.testing.assert_allclose(guided0, plain, atol=2e-4, rtol=1e-4)
  guided = _roll(net, SCFG)
  assert np.abs(guided - plain).max() > 1e-3  # guidance does something


def test_deterministic_per_seed_and_bounded(net):
  a, b = _roll(net, SCFG, seed=3), _roll(net, SCFG, seed=3)
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - _roll(net, SCFG, seed=4)).max() > 1e-3
  assert a.shape == (2, 64, K)
  assert a.min() >= 0.0 and np.all(a <= sq.AU_MAX + 1e-6)


def test_context_frames_are_kept(net):
  out = _roll(net, SCFG)
  np.testing.assert_allclose(out[:, :8], CTX, atol=1e-5)
  assert not np.allclose(out[0, 8:], out[1, 8:])  # streams differ


def test_stream_carries_context_between_chunks(net):
  st = sampler.Stream(net, SCFG, [4.0], [5], seed=0)
  first = st.start(_stim(1, st.first_frames))
  assert first.shape == (1, st.first_frames, K)
  nxt = st.step(_stim(1, st.new_frames))
  assert nxt.shape == (1, st.new_frames, K)
  # The carried context is the last C tokens of the previous chunk.
  c = SCFG.context * net.cfg.frames_per_token
  carried = net.norm.au_from_model(tokens.from_tokens(
      st.carry["context"], net.cfg.frames_per_token))
  assert carried.shape == (1, c, K)
  with pytest.raises(ValueError):
    st.start(_stim(1, 5))


def test_full_sequence_mode_renoises_context(net):
  scfg = dataclasses.replace(SCFG, replace_context=True, uncertainty=0.0)
  out = _roll(net, scfg)
  assert out.shape == (2, 64, K) and np.isfinite(out).all()


def test_context_sigma_noises_only_what_the_denoiser_sees(net):
  scfg = dataclasses.replace(SCFG, context_sigma=0.3)
  a, b = _roll(net, scfg, seed=3), _roll(net, scfg, seed=3)
  np.testing.assert_array_equal(a, b)  # the context noise is seeded
  assert np.abs(a - _roll(net, SCFG, seed=3)).max() > 1e-3
  np.testing.assert_allclose(a[:, :8], CTX, atol=1e-5)  # GT context kept
  assert a.min() >= 0.0 and np.all(a <= sq.AU_MAX + 1e-6)
  # What a stream carries to its next chunk is the frames it emitted,
  # never their noised copy.
  st = sampler.Stream(net, scfg, [4.0], [5], seed=0)
  st.start(_stim(1, st.first_frames))
  emitted = st.step(_stim(1, st.new_frames))
  c = SCFG.context * net.cfg.frames_per_token
  carried = net.norm.au_from_model(tokens.from_tokens(
      st.carry["context"], net.cfg.frames_per_token))
  np.testing.assert_allclose(carried, emitted[:, -c:], atol=1e-5)
