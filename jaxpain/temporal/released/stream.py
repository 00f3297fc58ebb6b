"""FLAME frames <-> the released model's space, and streaming rollouts.

reference.md §G.2: a released frame vector is [jaw pose axis-angle x 100
(3), FLAME expression (100)] = 103 values, zero-padded to 128 and mapped
x -> 2x - 1 (the padding is the constant -1). `to_model` / `from_model`
do that and its inverse; frames are grouped into tokens of fs frames with
`jaxpain.temporal.tokens` (frame-major, as `ReleasedDenoiser` expects).

`rollout` streams the released network with OUR sampler
(`jaxpain.temporal.sampler.sample_window`: the pyramid schedule, the
first-order step, leave-one-out guidance), one jitted call per chunk: a
first window without context, then chunks of H = W - C new tokens that
carry the last C generated tokens as clean context. It is not the
authors' sampler (their level table has no exact-zero level, their first
chunk differs, their demo post-filters the output): the network is
theirs, the sampling is ours.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxpain.temporal import sampler, tokens
from jaxpain.temporal.released.unet import ReleasedDenoiser

JAW = 3  # jaw pose axis-angle values
EXPRESSION = 100  # FLAME expression coefficients
FLAME_WIDTH = JAW + EXPRESSION
JAW_SCALE = 100.0  # the released data store jaw pose x 100
NUM_LEVELS = 35  # released: 35 Karras levels, 0.002 .. 80, rho 7


def to_model(flame, width: int = 128):
  """(..., 103) [jaw, expression] -> (..., width) model space."""
  flame = jnp.asarray(flame, jnp.float32)
  if flame.shape[-1] != FLAME_WIDTH:
    raise ValueError(f"FLAME frames need {FLAME_WIDTH} values (jaw 3, "
                     f"expression 100), got {flame.shape[-1]}")
  jaw = flame[..., :JAW] * JAW_SCALE
  pad = jnp.zeros((*flame.shape[:-1], width - FLAME_WIDTH), jnp.float32)
  return 2.0 * jnp.concatenate([jaw, flame[..., JAW:], pad], -1) - 1.0


def from_model(x):
  """(..., width) model space -> (..., 103) [jaw, expression]."""
  v = 0.5 * (jnp.asarray(x, jnp.float32) + 1.0)
  return jnp.concatenate([v[..., :JAW] / JAW_SCALE,
                          v[..., JAW:FLAME_WIDTH]], -1)


def sampler_config(model: ReleasedDenoiser, **overrides
                   ) -> sampler.SamplerConfig:
  """The released inference knobs: C from the config, 35 levels, the
  config's guidance weights, u = 4 for the 8-token real-time window and
  u = 2 otherwise (§G.4)."""
  cfg = model.cfg
  knobs = dict(context=cfg.context_size, num_levels=NUM_LEVELS,
               uncertainty=4.0 if cfg.window <= 8 else 2.0,
               guidance=tuple(cfg.guide))
  knobs.update(overrides)
  return sampler.SamplerConfig(**knobs)


@functools.partial(jax.jit, static_argnames=("graphdef", "scfg", "context"))
def _window(graphdef, state, scfg, context, ctx_tokens, stim, expr,
            emotion, weights, key):
  model = nnx.merge(graphdef, state)
  return sampler.sample_window(model, scfg, context, ctx_tokens, stim, expr,
                               emotion, weights, key)


def rollout(model: ReleasedDenoiser, scfg: sampler.SamplerConfig,
            stimulus, expressiveness, emotion, seed: int = 0,
            context_frames=None) -> np.ndarray:
  """FLAME frames (B, T, 103) for a stimulus (B, T), raw units.

  Args:
    model: the loaded released network.
    scfg: sampler knobs (`sampler_config`).
    stimulus: (B, T) per-frame temperature; T >= W * fs.
    expressiveness: (B,) raw expressiveness.
    emotion: (B,) raw emotion value.
    seed: noise seed.
    context_frames: optional (B, C*fs, 103) FLAME frames to continue from
      (returned as the first frames); None generates a first window.
  """
  cfg = model.cfg
  fs, w, c = cfg.frame_stack, cfg.window, scfg.context
  h = w - c
  stimulus = np.asarray(stimulus, np.float32)
  t = stimulus.shape[1]
  if t < w * fs:
    raise ValueError(f"a rollout needs at least {w * fs} stimulus frames")
  n_chunks = -(-(t - w * fs) // (h * fs))
  stim = np.pad(stimulus, ((0, 0), (0, w * fs + n_chunks * h * fs - t)),
                mode="edge")
  graphdef, state = nnx.split(model)
  # Only whether to guide is static: other weights do not recompile.
  static = dataclasses.replace(
      scfg, guidance=None if scfg.guidance is None else ())
  weights = jnp.asarray(scfg.guidance or (0.0, 0.0, 0.0), jnp.float32)
  expr = jnp.asarray(expressiveness, jnp.float32)
  emo = jnp.asarray(emotion, jnp.float32)
  key = jax.random.key(seed, impl=sampler.KEY_IMPL)

  def window(context, ctx, frames, i):
    return _window(graphdef, state, static, context, ctx,
                   jnp.asarray(frames), expr, emo, weights,
                   jax.random.fold_in(key, i))

  b = stimulus.shape[0]
  if context_frames is None:
    out = window(0, jnp.zeros((b, c, cfg.token_features)),
                 stim[:, :w * fs], 0)
    parts = [out]
  else:
    ctx = tokens.to_tokens(to_model(context_frames, cfg.latent_width), fs)
    out = window(c, ctx, stim[:, :w * fs], 0)
    parts = [ctx, out[:, c:]]
  pos = w * fs
  for i in range(n_chunks):
    out = window(c, out[:, w - c:], stim[:, pos - c * fs:pos + h * fs], i + 1)
    parts.append(out[:, c:])
    pos += h * fs
  frames = tokens.from_tokens(jnp.concatenate(parts, axis=1), fs)
  return np.asarray(from_model(frames))[:, :t]
