"""The released PainDiffusion network (FLAME space) in Flax NNX.

reference.md §G.3: an EDM-preconditioned 1-D U-Net over the 128 features
of a FLAME frame vector. A window of W tokens of fs stacked frames,
(B, W, fs, 128), is folded to (B*W, 128, fs): the fs frames are the input
channels, convolutions run along the feature axis, and time is seen only
by the temporal blocks (softmax self-attention over the W tokens,
bidirectional). Every level cross-attends to the condition context: three
per-frame MLPs (emotion, expressiveness, stimulus) give 3*fs channels of
width E (128) per token.

`ReleasedDenoiser` has the interface of `jaxpain.temporal.model.
PainDenoiser` (`condition`, `denoise`, `bound`, `cfg.window`,
`cfg.token_features`), so `jaxpain.temporal.sampler.sample_window` can run
it; tokens are (B, W, fs*128), frame-major like `tokens.to_tokens`.

Decisions (the released code disagrees with itself, §G.4):
  * null of a dropped signal: the TRAINING null, the raw signal set to 0
    before normalisation and the MLP (`training_step` zeroes the raw
    condition; the guided sampler zeroes the embedding instead). The
    weights were trained with the former.
  * context channel order: the training order, signal-major
    (channel = signal * fs + frame), not the sampler's frame-major one.
  * signal order: emotion, expressiveness, stimulus (the encoder's order
    and `model.SIGNALS`), whatever order a caller passes them in.
  * no clipping: `bound` is the identity (the released clamp is commented
    out).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxpain.temporal import edm
from jaxpain.temporal.released import layers

SIGMA_DATA = 0.5
# Width of the released frame vector (103 FLAME values, zero-padded).
LATENT_WIDTH = 128


@dataclasses.dataclass(frozen=True)
class ReleasedConfig:
  """What the network needs from a released config (YAML sections)."""

  dim: int = 32
  dim_mults: tuple[int, ...] = (1, 2, 4, 8)
  channels: int = 4  # = frame_stack: the stacked frames are the channels
  context_channels: int = 12  # 3 signals x frame_stack
  context_dim: int = 128  # E: width of each condition embedding
  attn_heads: int = 4
  attn_dim_head: int = 32
  theta: float = 10000.0
  frame_stack: int = 4
  window: int = 8  # W tokens per window (DIFFUSION.window_size)
  context_size: int = 2  # C clean tokens carried between chunks
  guide: tuple[float, ...] = (0.25, 0.5, 1.0)
  # DATA_STATS: (mean, std) of the raw signals, per frame.
  emotion_stats: tuple[float, float] = (4.6183, 1.3559)
  expressiveness_stats: tuple[float, float] = (8.33, 0.674)
  stimulus_stats: tuple[float, float] = (37.2281, 7.0676)
  latent_width: int = LATENT_WIDTH  # L: not in the YAML (code: 128)

  def __post_init__(self):
    if self.channels != self.frame_stack:
      raise ValueError(f"MODEL.channels {self.channels} != DIFFUSION."
                       f"frame_stack {self.frame_stack}")
    if self.context_channels != 3 * self.frame_stack:
      raise ValueError(f"MODEL.context_channels {self.context_channels} != "
                       f"3 signals x frame_stack {self.frame_stack}")
    levels = 2 ** (len(self.dim_mults) - 1)
    if self.latent_width % levels:
      raise ValueError(f"latent width {self.latent_width} is not divisible "
                       f"by {levels} ({len(self.dim_mults)} levels)")

  @property
  def frames_per_token(self) -> int:
    return self.frame_stack

  @property
  def token_features(self) -> int:
    return self.frame_stack * self.latent_width

  @classmethod
  def from_released(cls, conf: dict[str, Any],
                    latent_width: int = LATENT_WIDTH) -> ReleasedConfig:
    """From the `config` dict stored in a released checkpoint.

    Raises:
      ValueError: a section or key is missing, or the config asks for a
        variant this port does not build (self-conditioning, learned
        variance, a frame model, custom init/out widths).
    """
    try:
      model, diff, stats = (conf["MODEL"], conf["DIFFUSION"],
                            conf["DATA_STATS"])
      unsupported = {
          "MODEL.type": model.get("type", "video") != "video",
          "MODEL.self_condition": bool(model.get("self_condition")),
          "MODEL.learned_variance": bool(model.get("learned_variance")),
          "MODEL.init_dim": model.get("init_dim") not in (None,
                                                          model["dim"]),
          "MODEL.out_dim": model.get("out_dim") not in (None,
                                                        model["channels"]),
      }
      bad = [k for k, v in unsupported.items() if v]
      if bad:
        raise ValueError(f"released config asks for what this port does not "
                         f"build: {', '.join(bad)}")
      return cls(
          dim=int(model["dim"]),
          dim_mults=tuple(int(m) for m in model["dim_mults"]),
          channels=int(model["channels"]),
          context_channels=int(model["context_channels"]),
          context_dim=int(model["context_dim"]),
          attn_heads=int(model.get("attn_heads", 4)),
          attn_dim_head=int(model.get("attn_dim_head", 32)),
          theta=float(model.get("sinusoidal_pos_emb_theta", 10000)),
          frame_stack=int(diff["frame_stack"]),
          window=int(diff["window_size"]),
          context_size=int(diff["context_size"]),
          guide=tuple(float(g) for g in diff.get("guide", (1.0,) * 3)),
          emotion_stats=_stats(stats, "emotion"),
          expressiveness_stats=_stats(stats, "expressiveness"),
          stimulus_stats=_stats(stats, "stimulus_abs"),
          latent_width=latent_width)
    except (KeyError, TypeError) as e:
      raise ValueError(f"released config lacks {e} (needs MODEL, DIFFUSION "
                       "and DATA_STATS sections)") from None


def _stats(stats: dict, name: str) -> tuple[float, float]:
  return float(stats[name]["mean"]), float(stats[name]["std"])


class Level(nnx.Module):
  """One U-Net level: two ResBlocks, cross-attention, temporal block and
  the resampling conv ('down': k4 s2, 'up': nearest x2 + k3, 'same': k3)."""

  def __init__(self, cfg: ReleasedConfig, fin: int, width: int,
               fout: int, resample: str, skip: int, *, rngs: nnx.Rngs):
    emb, heads, dh = 4 * cfg.dim, cfg.attn_heads, cfg.attn_dim_head
    self.resample_kind = resample
    self.res1 = layers.ResBlock(fin + skip, width, emb, rngs=rngs)
    self.res2 = layers.ResBlock(width + skip, width, emb, rngs=rngs)
    self.cross = layers.CrossAttention(width, heads, dh, True,
                                       cfg.context_channels, rngs=rngs)
    self.temporal = layers.TemporalBlock(width, heads, dh, emb,
                                         cfg.context_channels, rngs=rngs)
    if resample == "down":
      self.resample = layers.Conv(width, fout, 4, stride=2, padding=1,
                                  rngs=rngs)
    else:
      self.resample = layers.Conv(width, fout, 3, padding=1, rngs=rngs)

  def torch_children(self) -> dict[str, str]:
    return {"res1": "0", "res2": "1", "cross": "2", "temporal": "3.fn",
            "resample": "4.1" if self.resample_kind == "up" else "4"}

  def down(self, x, noise, pos, ctx, batch, skips):
    x = self.res1(x, noise)
    skips.append(x)
    x = self.res2(x, noise)
    x = self.temporal(self.cross(x, ctx), pos, batch)
    skips.append(x)
    return self.resample(x)

  def up(self, x, noise, pos, ctx, batch, skips):
    x = self.res1(jnp.concatenate([x, skips.pop()], -1), noise)
    x = self.res2(jnp.concatenate([x, skips.pop()], -1), noise)
    x = self.temporal(self.cross(x, ctx), pos, batch)
    if self.resample_kind == "up":
      x = jnp.repeat(x, 2, axis=1)
    return self.resample(x)


class UNet(nnx.Module):
  """F(x, c_noise, context): the released `Unet1D` (torch prefix 'model')."""

  def __init__(self, cfg: ReleasedConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    d, emb = cfg.dim, 4 * cfg.dim
    dims = [d] + [d * m for m in cfg.dim_mults]
    pairs = list(zip(dims[:-1], dims[1:], strict=False))
    last = len(pairs) - 1
    self.init_conv = layers.Conv(cfg.channels, d, 7, padding=3, rngs=rngs)
    self.noise_emb = layers.EmbeddingMLP(d, emb, cfg.theta, rngs=rngs)
    self.pos_emb = layers.EmbeddingMLP(emb, emb, cfg.theta, rngs=rngs)
    self.downs = nnx.List([
        Level(cfg, i, i, o, "same" if n == last else "down", 0, rngs=rngs)
        for n, (i, o) in enumerate(pairs)])
    mid = dims[-1]
    self.mid_res1 = layers.ResBlock(mid, mid, emb, rngs=rngs)
    self.mid_cross = layers.CrossAttention(
        mid, cfg.attn_heads, cfg.attn_dim_head, False, cfg.context_channels,
        rngs=rngs)
    self.mid_temporal = layers.TemporalBlock(
        mid, cfg.attn_heads, cfg.attn_dim_head, emb, cfg.context_channels,
        rngs=rngs)
    self.mid_res2 = layers.ResBlock(mid, mid, emb, rngs=rngs)
    self.ups = nnx.List([
        Level(cfg, o, o, i, "same" if n == last else "up", i, rngs=rngs)
        for n, (i, o) in enumerate(reversed(pairs))])
    self.final_res = layers.ResBlock(2 * d, d, emb, rngs=rngs)
    self.final_conv = layers.Conv(d, cfg.channels, 1, rngs=rngs)

  def torch_children(self) -> dict[str, str]:
    return {"init_conv": "init_conv", "noise_emb": "time_noise_mlp",
            "pos_emb": "time_temporal_pos_emb", "downs": "downs",
            "mid_res1": "mid_block1", "mid_cross": "mid_spatial_attn",
            "mid_temporal": "mid_temporal_attn.fn",
            "mid_res2": "mid_block2", "ups": "ups",
            "final_res": "final_res_block", "final_conv": "final_conv"}

  def torch_ignored(self) -> dict[str, tuple[int, ...]]:
    """`context_mlp`: built by the released U-Net, never called."""
    d, e = self.cfg.dim, self.cfg.context_dim
    return {"context_mlp.0.weight": (d, e), "context_mlp.0.bias": (d,),
            "context_mlp.2.weight": (d, d), "context_mlp.2.bias": (d,),
            "context_mlp.3.weight": (d, d), "context_mlp.3.bias": (d,)}

  def __call__(self, x, c_noise, context):
    """x (B, W, fs, L); c_noise (B, W); context (B, W, E, 3 fs)."""
    b, w, fs, length = x.shape
    h = x.reshape(b * w, fs, length).transpose(0, 2, 1)
    ctx = context.reshape(b * w, *context.shape[2:])
    noise = self.noise_emb(c_noise.reshape(-1))
    pos = self.pos_emb(jnp.arange(w, dtype=jnp.float32))
    h = self.init_conv(h)
    stem, skips = h, []
    for level in self.downs:
      h = level.down(h, noise, pos, ctx, b, skips)
    h = self.mid_res1(h, noise)
    h = self.mid_temporal(self.mid_cross(h, ctx), pos, b)
    h = self.mid_res2(h, noise)
    for level in self.ups:
      h = level.up(h, noise, pos, ctx, b, skips)
    h = self.final_res(jnp.concatenate([h, stem], -1), noise)
    out = self.final_conv(h)  # (B*W, L, fs)
    return out.transpose(0, 2, 1).reshape(b, w, fs, length)


class SignalMLP(nnx.Module):
  """Linear 1 -> E, ReLU, Linear E -> E, Linear E -> E, per frame."""

  def __init__(self, width: int, *, rngs: nnx.Rngs):
    self.fc1 = layers.Linear(1, width, rngs=rngs)
    self.fc2 = layers.Linear(width, width, rngs=rngs)
    self.fc3 = layers.Linear(width, width, rngs=rngs)

  def torch_children(self) -> dict[str, str]:
    return {"fc1": "0", "fc2": "2", "fc3": "3"}

  def __call__(self, x):
    return self.fc3(self.fc2(jax.nn.relu(self.fc1(x[..., None]))))


class ConditionEncoder(nnx.Module):
  """The released `ControlEmbedding` (torch prefix 'ctrl_emb')."""

  def __init__(self, cfg: ReleasedConfig, *, rngs: nnx.Rngs):
    self.emotion = SignalMLP(cfg.context_dim, rngs=rngs)
    self.expressiveness = SignalMLP(cfg.context_dim, rngs=rngs)
    self.stimulus = SignalMLP(cfg.context_dim, rngs=rngs)

  def torch_children(self) -> dict[str, str]:
    return {"emotion": "emotion", "expressiveness": "pain_expressive",
            "stimulus": "stimulus_abs"}


def _per_frame(a, frames: int):
  """(B,) or (B, frames) -> (B, frames) float32."""
  a = jnp.asarray(a, jnp.float32)
  return jnp.broadcast_to(a[:, None], (a.shape[0], frames)) if a.ndim == 1 \
      else a


class ReleasedDenoiser(nnx.Module):
  """D(x; sigma | conditions) of the released model, PainDenoiser-style."""

  def __init__(self, cfg: ReleasedConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.unet = UNet(cfg, rngs=rngs)
    self.encoder = ConditionEncoder(cfg, rngs=rngs)

  def torch_children(self) -> dict[str, str]:
    return {"unet": "model", "encoder": "ctrl_emb"}

  def condition(self, stim, expr, emotion, drop):
    """The cross-attention context of a window, (B, W, E, 3 fs).

    Args:
      stim: (B, W*fs) stimulus per frame, raw units (degrees C).
      expr: (B,) or (B, W*fs) expressiveness, raw units.
      emotion: (B,) or (B, W*fs) emotion value (the released data: a mean
        of class indices), raw units.
      drop: (B, 3) bool, True where a signal (emotion, expressiveness,
        stimulus) is dropped: set to the training null, raw 0.
    """
    cfg = self.cfg
    b, frames = stim.shape
    drop = jnp.asarray(drop, bool)
    parts = []
    raw = (emotion, expr, stim)
    stats = (cfg.emotion_stats, cfg.expressiveness_stats, cfg.stimulus_stats)
    mlps = (self.encoder.emotion, self.encoder.expressiveness,
            self.encoder.stimulus)
    for i, (value, (mean, std), mlp) in enumerate(
        zip(raw, stats, mlps, strict=True)):
      value = jnp.where(drop[:, i, None], 0.0, _per_frame(value, frames))
      emb = mlp((value - mean) / std)  # (B, T, E)
      parts.append(emb.reshape(b, frames // cfg.frame_stack,
                               cfg.frame_stack, -1))
    ctx = jnp.concatenate(parts, axis=2)  # (B, W, 3 fs, E), signal-major
    return ctx.transpose(0, 1, 3, 2)

  def denoise(self, x, sigma, cond):
    """D(x; sigma) = c_skip x + c_out F(c_in x, ln(sigma) / 4).

    Args:
      x: (B, W, fs*L) noisy tokens in model space (`flame_to_model`).
      sigma: (B, W) noise level per token (> 0).
      cond: `condition(...)` output.
    """
    cfg = self.cfg
    b, w, _ = x.shape
    c_in, c_skip, c_out, c_noise = edm.precondition(sigma, SIGMA_DATA)
    x4 = x.reshape(b, w, cfg.frame_stack, cfg.latent_width)
    f = self.unet(x4 * c_in[..., None, None], c_noise, cond)
    return c_skip[..., None] * x + c_out[..., None] * f.reshape(b, w, -1)

  def bound(self, d):
    """The identity: the released sampler does not clip."""
    return d

  def __call__(self, x, sigma, stim, expr, emotion, drop):
    return self.denoise(x, sigma, self.condition(stim, expr, emotion, drop))
