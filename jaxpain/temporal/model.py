"""The denoiser: an AdaLN transformer over tokens of stacked AU frames.

reference.md §G.6: with K ~ 13 AUs instead of 128 FLAME dimensions, the
released U-Net's convolutions over the latent axis no longer fit, so the
network is a DiT-style transformer over the W tokens of a window:

  tokens (B, W, fs*K) --c_in--> Linear --> + position --> depth x Block
  --> AdaLN final norm --> Linear (zero init) = F, and D = c_skip x + c_out F

Each token carries its own conditioning vector c_j = e(sigma_j) +
e(stimulus look-back of token j) + e(expressiveness) + e(emotion). Blocks
are modulated per token (shift/scale/gate, adaLN-Zero). The modulation is
"adaLN-single" (PixArt-alpha): ONE Linear d -> 6d shared by all blocks plus
a learned per-block offset, instead of a d -> 6d Linear per block. That
removes a third of a DiT's per-token work, which is what decides the
real-time budget on a CPU (every sampling row re-runs the whole window).

Classifier-free guidance: each signal has ONE learned null (a vector for
stimulus and expressiveness, an extra embedding row for emotion) that
replaces it wherever it is dropped, in training (p = 0.1 each) and in the
guided sampler alike (§G.4 lists the original's raw-zero vs zeroed-
embedding mismatch). Emotion is a category with its own table, never a
mean of class indices. Attention is bidirectional over the window, as
released; causality comes from the pyramid schedule and the context.

`condition` (once per chunk) and `denoise` (once per sampling row) are
separate so the sampler embeds the conditions once per chunk.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxpain.models import layers
from jaxpain.temporal import edm, tokens

# Order of the guided signals; also the columns of a `drop` mask.
SIGNALS = ("emotion", "expressiveness", "stimulus")
NUM_EMOTIONS = 8

# name -> (width, depth, heads). 'base' is the ~5 M-parameter model of
# the issue (the released U-Net has 5.4 M); 'small' trains in minutes on a
# CPU (the end-to-end job); 'tiny' is for tests.
VARIANTS = {
    "tiny": (32, 2, 2),
    "small": (128, 4, 4),
    "base": (256, 6, 4),
}


@dataclasses.dataclass(frozen=True)
class TemporalConfig:
  """Hyperparameters of the denoiser (a trained model's config.json)."""

  num_aus: int = 13  # K AU channels per frame
  frames_per_token: int = 4  # fs: frames stacked into one token
  window: int = 16  # W tokens per window (context + new)
  stim_history: int = 8  # look-back tokens of stimulus per token
  variant: str = "base"  # a VARIANTS key: width, depth, heads
  mlp_ratio: int = 4
  num_emotions: int = NUM_EMOTIONS
  noise_features: int = 32  # sinusoid frequencies of c_noise
  frame_features: int = 32  # per-frame channels of the output head
  frame_kernel: int = 5  # frames seen by the head's temporal convolution
  dtype: str = "float32"  # compute dtype; parameters are float32

  def __post_init__(self):
    if self.variant not in VARIANTS:
      raise ValueError(f"variant {self.variant!r} not in {sorted(VARIANTS)}")

  @property
  def width(self) -> int:
    return VARIANTS[self.variant][0]

  @property
  def depth(self) -> int:
    return VARIANTS[self.variant][1]

  @property
  def heads(self) -> int:
    return VARIANTS[self.variant][2]

  @property
  def token_features(self) -> int:
    return self.frames_per_token * self.num_aus

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> TemporalConfig:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


def _normal(std: float):
  """N(0, std^2). Plain, not truncated: its initialisation compiles several
  times faster on a CPU, which matters for tests and tools."""
  def init(key, shape, dtype=jnp.float32):
    return std * jax.random.normal(key, shape, dtype)
  return init


def _param(rngs, init, shape, names):
  return layers.make_param(nnx.Param, init, rngs.params(), shape, names,
                           jnp.float32)


class Dense(nnx.Module):
  """x @ W + b with logical axis names; LeCun-normal or zero init."""

  def __init__(self, fin: int, fout: int, names=("embed", "mlp"), *,
               zero: bool = False, rngs: nnx.Rngs):
    init = layers.constant(0.0) if zero else _normal(fin ** -0.5)
    self.kernel = _param(rngs, init, (fin, fout), names)
    self.bias = _param(rngs, layers.constant(0.0), (fout,), names[1:])

  def __call__(self, x):
    return x @ self.kernel[...].astype(x.dtype) + self.bias[...].astype(
        x.dtype)


class MLP(nnx.Module):
  """Linear -> SiLU -> Linear: the embedding of one conditioning signal."""

  def __init__(self, fin: int, width: int, *, rngs: nnx.Rngs):
    self.fc1 = Dense(fin, width, (None, "embed"), rngs=rngs)
    self.fc2 = Dense(width, width, ("mlp", "embed"), rngs=rngs)

  def __call__(self, x):
    return self.fc2(jax.nn.silu(self.fc1(x)))


def _norm(x, eps=1e-6):
  """LayerNorm without parameters (AdaLN supplies scale and shift)."""
  x32 = x.astype(jnp.float32)
  mu = x32.mean(-1, keepdims=True)
  var = jnp.square(x32 - mu).mean(-1, keepdims=True)
  return ((x32 - mu) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


class Block(nnx.Module):
  """Pre-norm transformer block with per-token adaLN-Zero modulation."""

  def __init__(self, width: int, heads: int, mlp_ratio: int, *,
               rngs: nnx.Rngs):
    hd = width // heads
    self.heads = heads
    self.qkv = _param(rngs, _normal(width ** -0.5),
                      (width, 3, heads, hd), ("embed", None, "heads", "kv"))
    self.out = _param(rngs, _normal(width ** -0.5),
                      (heads, hd, width), ("heads", "kv", "embed"))
    self.fc1 = Dense(width, width * mlp_ratio, ("embed", "mlp"), rngs=rngs)
    self.fc2 = Dense(width * mlp_ratio, width, ("mlp", "embed"), rngs=rngs)

  def __call__(self, x, mod):
    """x (B, W, d); mod (B, W, 6, d): shift/scale/gate x (attn, mlp)."""
    sa, ca, ga, sm, cm, gm = (mod[..., i, :] for i in range(6))
    h = _norm(x) * (1 + ca) + sa
    q, k, v = jnp.einsum("bld,dshk->sbhlk", h,
                         self.qkv[...].astype(h.dtype))
    scale = 1.0 / math.sqrt(q.shape[-1])
    att = jnp.einsum("bhqk,bhsk->bhqs", q * scale, k)
    att = jax.nn.softmax(att.astype(jnp.float32), axis=-1).astype(h.dtype)
    o = jnp.einsum("bhqs,bhsk->bqhk", att, v)
    x = x + ga * jnp.einsum("bqhk,hkd->bqd", o, self.out[...].astype(h.dtype))
    h = _norm(x) * (1 + cm) + sm
    h = self.fc2(jax.nn.gelu(self.fc1(h), approximate=True))
    return x + gm * h


def sinusoid(x, num: int):
  """(...,) -> (..., 2 num) sin/cos features at log-spaced frequencies."""
  # c_noise = ln(sigma) / 4 spans ~[-1.6, 1.1]: periods from ~0.1 to 25.
  freqs = 0.25 * jnp.exp(math.log(256.0) * jnp.arange(num) / max(num - 1, 1))
  ang = x[..., None] * freqs
  return jnp.concatenate([jnp.sin(ang), jnp.cos(ang)], -1)


class PainDenoiser(nnx.Module):
  """F of the EDM denoiser, plus the conditioning embeddings."""

  def __init__(self, cfg: TemporalConfig, norm: tokens.Normaliser, *,
               rngs: nnx.Rngs):
    if norm.num_aus != cfg.num_aus:
      raise ValueError(f"normaliser has {norm.num_aus} AUs, config "
                       f"{cfg.num_aus}")
    self.cfg, self.norm = cfg, norm
    d, fs = cfg.width, cfg.frames_per_token
    self.dtype = jnp.dtype(cfg.dtype)
    self.inp = Dense(cfg.token_features, d, (None, "embed"), rngs=rngs)
    self.pos = _param(rngs, _normal(0.02), (cfg.window, d),
                      (None, "embed"))
    self.noise_emb = MLP(2 * cfg.noise_features, d, rngs=rngs)
    self.stim_emb = MLP((cfg.stim_history + 1) * fs, d, rngs=rngs)
    self.expr_emb = MLP(1, d, rngs=rngs)
    self.emotion_emb = _param(rngs, _normal(0.02),
                              (cfg.num_emotions + 1, d), (None, "embed"))
    # The learned nulls of stimulus and expressiveness (emotion's null is
    # the table's last row).
    self.stim_null = _param(rngs, _normal(0.02), (d,),
                            ("embed",))
    self.expr_null = _param(rngs, _normal(0.02), (d,),
                            ("embed",))
    self.mod = Dense(d, 6 * d, ("embed", "mlp"), zero=True, rngs=rngs)
    self.block_mod = _param(rngs, layers.constant(0.0),
                            (cfg.depth, 6, d), (None, None, "embed"))
    self.blocks = nnx.List([Block(d, cfg.heads, cfg.mlp_ratio, rngs=rngs)
                            for _ in range(cfg.depth)])
    self.final_mod = Dense(d, 2 * d, ("embed", "mlp"), zero=True, rngs=rngs)
    self.head = Dense(d, cfg.token_features, ("embed", None), zero=True,
                      rngs=rngs)
    hf = cfg.frame_features
    self.frame_in = Dense(d, fs * hf, ("embed", None), rngs=rngs)
    self.frame_conv = _param(rngs, _normal((cfg.frame_kernel * hf) ** -0.5),
                             (cfg.frame_kernel, hf, hf), (None, None, None))
    self.frame_out = Dense(hf, cfg.num_aus, (None, None), zero=True,
                           rngs=rngs)

  # ------------------------------------------------------- conditions ----
  def condition(self, stim, expr, emotion, drop):
    """Embedded conditions per token, (B, W, d); sigma is added later.

    Args:
      stim: (B, (stim_history + W) * fs) normalised stimulus frames.
      expr: (B,) normalised expressiveness.
      emotion: (B,) int emotion index in [0, num_emotions).
      drop: (B, 3) bool, True where a signal (SIGNALS order) is replaced
        by its learned null.
    """
    cfg = self.cfg
    look = tokens.stim_lookback(stim.astype(jnp.float32),
                                cfg.frames_per_token, cfg.window,
                                cfg.stim_history)
    drop = drop.astype(bool)
    s = self.stim_emb(look)
    s = jnp.where(drop[:, 2, None, None], self.stim_null[...], s)
    e = self.expr_emb(expr.astype(jnp.float32)[:, None])
    e = jnp.where(drop[:, 1, None], self.expr_null[...], e)
    idx = jnp.where(drop[:, 0], cfg.num_emotions, emotion.astype(jnp.int32))
    m = self.emotion_emb[...][idx]
    return s + (e + m)[:, None, :]

  # ---------------------------------------------------------- denoise ----
  def raw(self, x_in, c_noise, cond):
    """F(c_in x, c_noise | cond): (B, W, fs*K)."""
    dt = self.dtype
    c = cond + self.noise_emb(sinusoid(c_noise, self.cfg.noise_features))
    c = jax.nn.silu(c).astype(dt)
    mod = self.mod(c).reshape(*c.shape[:2], 6, -1)
    h = self.inp(x_in.astype(dt)) + self.pos[...].astype(dt)
    for i, block in enumerate(self.blocks):
      h = block(h, mod + self.block_mod[...][i].astype(dt))
    shift, scale = jnp.split(self.final_mod(c), 2, axis=-1)
    h = _norm(h) * (1 + scale) + shift
    return (self.head(h) + self._frame_conv(h)).astype(jnp.float32)

  def _frame_conv(self, h):
    """A residual per-frame path through a temporal convolution.

    The fs frames of a token come from one linear map of one token vector
    (`head`), so adjacent tokens can meet at a seam (a jump in AU(t) every
    fs frames; measured on a trained model without this path: first
    differences 3x larger at token boundaries than inside tokens). This
    path convolves at frame rate across token boundaries and is added to
    the linear head, which keeps the exact per-frame map EDM needs at low
    noise.
    """
    b, w, _ = h.shape
    fs, k = self.cfg.frames_per_token, self.cfg.frame_kernel
    f = jax.nn.gelu(self.frame_in(h).reshape(b, w * fs, -1),
                    approximate=True)
    pad = jnp.pad(f, ((0, 0), (k // 2, k - 1 - k // 2), (0, 0)))
    kern = self.frame_conv[...].astype(f.dtype)
    conv = sum(pad[:, i:i + w * fs] @ kern[i] for i in range(k))
    out = self.frame_out(jax.nn.gelu(conv, approximate=True))
    return out.reshape(b, w, -1)

  def denoise(self, x, sigma, cond):
    """D(x; sigma) = c_skip x + c_out F, unbounded, (B, W, fs*K).

    Args:
      x: noisy normalised tokens (B, W, fs*K).
      sigma: (B, W) noise level per token (> 0).
      cond: `condition(...)` output.
    """
    c_in, c_skip, c_out, c_noise = edm.precondition(
        sigma, self.norm.sigma_data)
    f = self.raw(x * c_in[..., None], c_noise, cond)
    return c_skip[..., None] * x + c_out[..., None] * f

  def bound(self, d):
    """Clips normalised tokens to the AU ranges (0 .. au_max per AU)."""
    lo, hi = tokens.token_bounds(self.norm, self.cfg.frames_per_token)
    return jnp.clip(d, lo, hi)

  def __call__(self, x, sigma, stim, expr, emotion, drop):
    return self.denoise(x, sigma, self.condition(stim, expr, emotion, drop))


def build(cfg: TemporalConfig, norm: tokens.Normaliser,
          seed: int = 0) -> PainDenoiser:
  """The denoiser with fresh parameters (names only; unsharded).

  Eager sharding is off: the trainer builds it inside `jax.jit` with
  explicit out_shardings (jaxpain.sharding), also under a mesh. The init
  key is an 'rbg' key: XLA compiles its ~100 initialisers in about half the
  time of threefry's on a CPU (init is compiled once per run and per test).
  """
  key = jax.random.key(seed, impl="rbg")
  with nnx.use_eager_sharding(False):
    return PainDenoiser(cfg, norm, rngs=nnx.Rngs(params=key))


def create(cfg: TemporalConfig, norm: tokens.Normaliser,
           seed: int = 0) -> PainDenoiser:
  """Like `build`, but initialised in ONE jitted call (eager init would
  compile every initialiser separately: slow on a CPU)."""
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: build(cfg, norm, seed)))
  state = jax.jit(lambda: nnx.state(build(cfg, norm, seed)))()
  return nnx.merge(graphdef, state)


def num_params(model: nnx.Module) -> int:
  return int(sum(x.size for x in jax.tree.leaves(nnx.state(model,
                                                           nnx.Param))))
