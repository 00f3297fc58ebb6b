"""Streaming sampler: one jitted call per chunk, many streams at once.

A stream's state between chunks is its last C generated tokens (clean
context) and the stimulus look-back. One chunk:

  1. embed the conditions of the window once, for all guidance branches
     [all, -emotion, -expressiveness, -stimulus], each stream's branches
     next to it along the batch;
  2. start the new tokens at N(0, sigma_max^2);
  3. `lax.scan` over the rows of the constant pyramid matrix: per row one
     denoiser evaluation of the whole window (4B rows with guidance), the
     leave-one-out combination D = (1 + sum w) D(all) - sum w_i D(-i),
     clipped to the AU ranges, and a first-order (DDIM/Euler) step
     x <- x + (1 - sigma_next / sigma) (D - x) for the tokens whose level
     changes (the others, context included, stay exactly as they are);
  4. emit the new tokens as AU frames and carry the last C as context.

The first chunk of a stream has no context and generates the whole window
(its own pyramid, a second compiled function). Streams are independent
rows of the batch: B streams cost one call per chunk.

`replace_context` is the full-sequence baseline's way to continue a
sequence: a model trained with one sigma for the whole window has never
seen clean tokens beside noisy ones, so its context is re-noised to the
current level every row (the replacement method), and u = 0.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxpain.temporal import edm, schedule, tokens
from jaxpain.temporal.model import SIGNALS, PainDenoiser

# PRNG of the sampler's noise: 'rbg' compiles markedly faster than
# threefry on a CPU (each sampler variant is compiled per process), and
# streams run unsharded, where rbg is deterministic per seed.
KEY_IMPL = "rbg"

# The guidance branches, in batch order: which signals each one drops.
BRANCH_DROPS = np.array([[False, False, False], [True, False, False],
                         [False, True, False], [False, False, True]])


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
  """Inference knobs (none of them needs retraining)."""

  context: int = 4  # C clean tokens carried from chunk to chunk
  num_levels: int = 32  # L noise levels (Karras, rho 7)
  uncertainty: float = 1.0  # u: steps between consecutive new tokens
  sigma_min: float = 0.002
  sigma_max: float = 80.0
  rho: float = 7.0
  # Leave-one-out guidance weights, SIGNALS order (emotion,
  # expressiveness, stimulus); released: 0.25, 0.5, 1.0. None: no guidance
  # (one branch, the conditional model).
  guidance: tuple[float, ...] | None = (0.25, 0.5, 1.0)
  replace_context: bool = False  # the full-sequence baseline (see above)
  # Noise level at which the carried context is shown to the denoiser
  # (0: exactly clean). The model was trained with an independent sigma
  # per token, so a lightly noised context is in distribution; it keeps
  # the stream from trusting its own past too much (errors then compound
  # less) and leaves more of each chunk to the stimulus. The emitted
  # frames are never noised. Ignored with replace_context.
  context_sigma: float = 0.0

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> SamplerConfig:
    d = dict(d)
    if d.get("guidance") is not None:
      d["guidance"] = tuple(float(x) for x in d["guidance"])
    return cls(**d)


def _per_stream(a, branches: int):
  """(B, ...) -> (B * branches, ...), row b * branches + i = a[b].

  Each stream's guidance branches sit next to it, so when the streams are
  split over devices a stream and its branches stay on one device (a
  branch-major concatenation would move rows between devices on every
  evaluation: jaxpain.bench.temporal_tpu asserts there is no collective).
  """
  if branches == 1:
    return a
  return jnp.repeat(a, branches, axis=0)


def _guided(model: PainDenoiser, x, sigma, cond, weights, branches: int):
  """Leave-one-out guided D, clipped; x (B, W, F), cond (B*branches, ...)
  stream-major (`_per_stream`)."""
  b = x.shape[0]
  d = model.denoise(_per_stream(x, branches), _per_stream(sigma, branches),
                    cond)
  if branches > 1:
    d = d.reshape(b, branches, *d.shape[1:])
    w = weights.astype(d.dtype)
    d = (1.0 + w.sum()) * d[:, 0] - jnp.einsum("i,bi...->b...", w, d[:, 1:])
  return model.bound(d)


def _condition(model, stim, expr, emotion, branches: int):
  b = stim.shape[0]
  drops = jnp.tile(jnp.asarray(BRANCH_DROPS[:branches]), (b, 1))
  return model.condition(_per_stream(stim, branches),
                         _per_stream(expr, branches),
                         _per_stream(emotion, branches), drops)


def sample_window(model: PainDenoiser, scfg: SamplerConfig, context: int,
                  ctx_tokens, stim, expr, emotion, weights, key):
  """Denoises one window; returns all W tokens (normalised), (B, W, F).

  Args:
    model: the denoiser (merged inside the caller's jit).
    scfg: sampler knobs.
    context: C for this call (0 on a stream's first chunk).
    ctx_tokens: (B, C, F) clean normalised context (ignored when C = 0).
    stim: (B, (history + W) * fs) normalised stimulus frames.
    expr: (B,) normalised expressiveness.
    emotion: (B,) int.
    weights: (3,) guidance weights (used when scfg.guidance is not None).
    key: PRNG key of this chunk.
  """
  cfg = model.cfg
  w, feat = cfg.window, cfg.token_features
  u = 0.0 if scfg.replace_context else scfg.uncertainty
  levels = jnp.asarray(schedule.pyramid(scfg.num_levels, w, context, u))
  sig = jnp.asarray(edm.level_table(scfg.num_levels, scfg.sigma_min,
                                    scfg.sigma_max, scfg.rho))
  branches = 1 if scfg.guidance is None else len(SIGNALS) + 1
  cond = _condition(model, stim, expr, emotion, branches)
  b = stim.shape[0]
  k_init, k_rows = jax.random.split(key)
  x = scfg.sigma_max * jax.random.normal(k_init, (b, w, feat))
  if context:
    x = x.at[:, :context].set(ctx_tokens)
  clean = x[:, :context]
  is_ctx = (jnp.arange(w) < context)[None, :, None]
  ctx_sigma = 0.0 if scfg.replace_context else scfg.context_sigma
  if context and ctx_sigma > 0:
    # One draw per chunk: the context is held at this noisy value, and
    # the denoiser is told its level, on every row.
    k_ctx = jax.random.fold_in(k_init, 1)
    clean = clean + ctx_sigma * jax.random.normal(k_ctx, clean.shape)
    x = x.at[:, :context].set(clean)

  def row(x, inp):
    lv, lv_next, k = inp
    s, s_next = sig[lv], sig[lv_next]
    s_in = jnp.broadcast_to(jnp.maximum(s, scfg.sigma_min), (b, w))
    if ctx_sigma > 0 and context:
      s_in = jnp.where(is_ctx[..., 0], ctx_sigma, s_in)
    if scfg.replace_context and context:
      s_top = jnp.max(s)  # all new tokens share one level (u = 0)
      noisy = clean + s_top * jax.random.normal(k, clean.shape)
      x = jnp.where(is_ctx, jnp.pad(noisy, ((0, 0), (0, w - context),
                                            (0, 0))), x)
      s_in = jnp.where(is_ctx[..., 0], jnp.maximum(s_top, scfg.sigma_min),
                       s_in)
    d = _guided(model, x, s_in, cond, weights, branches)
    ratio = jnp.where(s > 0, s_next / jnp.where(s > 0, s, 1.0), 1.0)
    x_new = x + (1.0 - ratio)[None, :, None] * (d - x)
    if context:
      x_new = jnp.where(is_ctx, jnp.pad(clean, ((0, 0), (0, w - context),
                                                (0, 0))), x_new)
    return x_new, None

  keys = jax.random.split(k_rows, levels.shape[0] - 1)
  x, _ = jax.lax.scan(row, x, (levels[:-1], levels[1:], keys))
  return x


# ----------------------------------------------------------- streaming ----


@functools.partial(jax.jit, static_argnames=("graphdef", "scfg", "first"))
def _chunk(graphdef, state, scfg, first, carry, new_stim, expr, emotion,
           weights, key):
  """One chunk: (carry, new stimulus frames) -> (carry', AU frames)."""
  model = nnx.merge(graphdef, state)
  cfg, norm = model.cfg, model.norm
  fs, c = cfg.frames_per_token, scfg.context
  ctx, hist = carry["context"], carry["stim"]
  stim = jnp.concatenate([hist, norm.stim_to_model(new_stim)], axis=1)
  out = sample_window(model, scfg, 0 if first else c, ctx, stim,
                      norm.expr_to_model(expr), emotion, weights, key)
  new = out if first else out[:, c:]
  keep = (cfg.stim_history + c) * fs
  carry = {"context": out[:, cfg.window - c:], "stim": stim[:, -keep:]}
  frames = norm.au_from_model(tokens.from_tokens(new, fs))
  return carry, frames


class Stream:
  """B independent streams; `start` once, then `step` per chunk.

  Each call is one jitted function call. Frames come back as AU
  intensities (B, n, K) in 0..au_max.
  """

  def __init__(self, model: PainDenoiser, scfg: SamplerConfig,
               expressiveness, emotion, seed: int = 0):
    self.graphdef, self.state = nnx.split(model)
    self.cfg, self.scfg, self.norm = model.cfg, scfg, model.norm
    self.expr = jnp.asarray(expressiveness, jnp.float32)
    self.emotion = jnp.asarray(emotion, jnp.int32)
    self.weights = jnp.asarray(scfg.guidance or (0.0, 0.0, 0.0), jnp.float32)
    # The weights are a traced input; only whether to guide is static, so
    # changing the weights does not recompile.
    self._static = dataclasses.replace(
        scfg, guidance=None if scfg.guidance is None else ())
    self.key = jax.random.key(seed, impl=KEY_IMPL)
    self.carry = None
    self.chunks = 0

  @property
  def new_frames(self) -> int:
    """Frames per `step` (H tokens x fs)."""
    return (self.cfg.window - self.scfg.context) * self.cfg.frames_per_token

  @property
  def first_frames(self) -> int:
    return self.cfg.window * self.cfg.frames_per_token

  def _call(self, first, carry, stim):
    key = jax.random.fold_in(self.key, self.chunks)
    self.chunks += 1
    self.carry, frames = _chunk(self.graphdef, self.state, self._static, first,
                                carry, jnp.asarray(stim, jnp.float32),
                                self.expr, self.emotion, self.weights, key)
    return frames

  def start(self, stim, context_frames=None):
    """Opens the streams.

    Args:
      stim: (B, n) stimulus frames, raw units: the window's W*fs frames
        (n = first_frames), or, with `context_frames`, its C*fs context
        frames plus the first H*fs new ones (n = first_frames too).
        Frames before it (the look-back) repeat the first value.
      context_frames: optional (B, C*fs, K) AU frames to continue from
        (evaluation from ground-truth context); None generates a whole
        first window.

    Returns:
      AU frames: (B, W*fs, K) without context, else (B, H*fs, K).
    """
    stim = np.asarray(stim, np.float32)
    fs, hist = self.cfg.frames_per_token, self.cfg.stim_history
    if stim.shape[1] != self.first_frames:
      raise ValueError(f"start needs {self.first_frames} stimulus frames, "
                       f"got {stim.shape[1]}")
    pad = np.repeat(stim[:, :1], hist * fs, axis=1)
    b = stim.shape[0]
    if context_frames is None:
      carry = {"context": jnp.zeros((b, self.scfg.context,
                                     self.cfg.token_features)),
               "stim": self.norm.stim_to_model(pad)}
      return self._call(True, carry, stim)
    c = self.scfg.context * fs
    ctx = self.norm.au_to_model(jnp.asarray(context_frames, jnp.float32))
    hist_stim = np.concatenate([pad, stim[:, :c]], axis=1)
    carry = {"context": tokens.to_tokens(ctx, fs),
             "stim": self.norm.stim_to_model(hist_stim)}
    return self._call(False, carry, stim[:, c:])

  def step(self, stim):
    """Next chunk from (B, H*fs) new stimulus frames: (B, H*fs, K)."""
    if self.carry is None:
      raise RuntimeError("call start() before step()")
    return self._call(False, self.carry, stim)


def rollout(model: PainDenoiser, scfg: SamplerConfig, stimulus,
            expressiveness, emotion, seed: int = 0, context_frames=None,
            progress: bool = False) -> np.ndarray:
  """Generates (B, T, K) AU frames for a whole stimulus (B, T).

  With `context_frames` (B, C*fs, K), those frames are returned as the
  first C*fs frames and the rest is generated from them. T is cut to
  whole chunks; the remainder is generated and trimmed.
  """
  stimulus = np.asarray(stimulus, np.float32)
  t = stimulus.shape[1]
  st = Stream(model, scfg, expressiveness, emotion, seed)
  first = st.first_frames
  if t < first:
    raise ValueError(f"a rollout needs at least {first} stimulus frames")
  out = [np.asarray(st.start(stimulus[:, :first], context_frames))]
  if context_frames is not None:
    out.insert(0, np.asarray(context_frames, np.float32))
  pos, h = first, st.new_frames
  n_chunks = -(-(t - pos) // h)
  padded = np.pad(stimulus, ((0, 0), (0, max(0, pos + n_chunks * h - t))),
                  mode="edge")
  it = range(n_chunks)
  if progress:
    from tqdm.auto import tqdm

    it = tqdm(it, desc="sample", unit="chunk")
  for _ in it:
    out.append(np.asarray(st.step(padded[:, pos:pos + h])))
    pos += h
  return np.concatenate(out, axis=1)[:, :t]
