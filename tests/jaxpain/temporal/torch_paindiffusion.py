"""A small PyTorch PainDiffusion, written for the parity test.

It follows the released architecture (reference.md §G.3) in PyTorch's own
layout (channel-first, Conv1d weights [O, I, K]) and produces the released
state_dict key names, so a file saved from it has the released format.
It is our code, written from the description, not the authors'; the key
list it must produce is pinned separately (`released_keys_tiny.txt`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

SIGMA_DATA = 0.5


class Sinusoid(nn.Module):

  def __init__(self, dim: int, theta: float):
    super().__init__()
    self.dim, self.theta = dim, theta

  def forward(self, x):
    half = self.dim // 2
    f = torch.exp(-math.log(self.theta) / (half - 1) * torch.arange(half))
    a = x[:, None] * f[None]
    return torch.cat([a.sin(), a.cos()], -1)


def embedding_mlp(features: int, width: int, theta: float):
  return nn.Sequential(Sinusoid(features, theta), nn.Linear(features, width),
                       nn.GELU(), nn.Linear(width, width))


class RMSNorm(nn.Module):

  def __init__(self, c: int):
    super().__init__()
    self.g = nn.Parameter(torch.ones(1, c, 1))

  def forward(self, x):
    return F.normalize(x, dim=1) * self.g * math.sqrt(x.shape[1])


class Block(nn.Module):

  def __init__(self, fin: int, fout: int):
    super().__init__()
    self.proj = nn.Conv1d(fin, fout, 3, padding=1)
    self.norm = RMSNorm(fout)


class ResBlock(nn.Module):

  def __init__(self, fin: int, fout: int, emb: int):
    super().__init__()
    self.time_mlp = nn.Sequential(nn.SiLU(), nn.Linear(emb, 2 * fout))
    self.block1 = Block(fin, fout)
    self.block2 = Block(fout, fout)
    self.res_conv = nn.Conv1d(fin, fout, 1) if fin != fout else nn.Identity()

  def forward(self, x, emb):
    scale, shift = self.time_mlp(emb)[:, :, None].chunk(2, dim=1)
    h = self.block1.norm(self.block1.proj(x)) * (scale + 1) + shift
    h = F.silu(h)
    h = F.silu(self.block2.norm(self.block2.proj(h)))
    return h + self.res_conv(x)


class Attention(nn.Module):
  """Softmax or linear multi-head attention over the last axis."""

  def __init__(self, dim: int, heads: int, dim_head: int, linear: bool):
    super().__init__()
    hidden = heads * dim_head
    self.heads, self.scale, self.linear = heads, dim_head ** -0.5, linear
    self.to_q = nn.Conv1d(dim, hidden, 1, bias=False)
    self.to_k = nn.Conv1d(dim, hidden, 1, bias=False)
    self.to_v = nn.Conv1d(dim, hidden, 1, bias=False)
    self.to_out = (nn.Sequential(nn.Conv1d(hidden, dim, 1), RMSNorm(dim))
                   if linear else nn.Conv1d(hidden, dim, 1))

  def forward(self, x, context=None):
    kv = x if context is None else context
    n = x.shape[0]
    q, k, v = (t.reshape(n, self.heads, -1, t.shape[-1]) for t in
               (self.to_q(x), self.to_k(kv), self.to_v(kv)))  # n h d len
    if self.linear:
      q = q.softmax(dim=-2) * self.scale
      k = k.softmax(dim=-1)
      out = torch.einsum("nhde,nhdi->nhei",
                         torch.einsum("nhdj,nhej->nhde", k, v), q)
    else:
      sim = torch.einsum("nhdi,nhdj->nhij", q * self.scale, k)
      out = torch.einsum("nhij,nhdj->nhdi", sim.softmax(-1), v)
    return self.to_out(out.reshape(n, -1, out.shape[-1]))


class CrossAttention(nn.Module):

  def __init__(self, dim, heads, dim_head, linear, context_channels):
    super().__init__()
    self.attn = Attention(dim, heads, dim_head, linear)
    self.context_proj = nn.Conv1d(context_channels, dim, 1)
    self.norm = RMSNorm(dim)

  def forward(self, x, context=None, scale_shift=None):
    if context is not None:
      context = self.context_proj(context)
    if scale_shift is not None:
      x = x * (scale_shift[0] + 1) + scale_shift[1]
    return self.attn(self.norm(x), context) + x


class TemporalAttention(nn.Module):

  def __init__(self, dim, heads, dim_head, emb, context_channels):
    super().__init__()
    self.time_mlp = nn.Sequential(nn.SiLU(), nn.Linear(emb, 2 * dim))
    self.block1 = CrossAttention(dim, heads, dim_head, False,
                                 context_channels)
    self.block2 = CrossAttention(dim, heads, dim_head, False,
                                 context_channels)

  def forward(self, x, pos):
    scale, shift = self.time_mlp(pos).t().chunk(2, dim=0)  # (C, t) each
    return x + self.block2(self.block1(x, scale_shift=(scale, shift)))


class TemporalWrap(nn.Module):
  """(B*t, C, L) <-> (B*L, C, t) around the temporal attention."""

  def __init__(self, fn):
    super().__init__()
    self.fn = fn

  def forward(self, x, pos, b):
    bt, c, length = x.shape
    t = bt // b
    h = x.reshape(b, t, c, length).permute(0, 3, 2, 1).reshape(-1, c, t)
    h = self.fn(h, pos)
    return h.reshape(b, length, c, t).permute(0, 3, 2, 1).reshape(bt, c,
                                                                  length)


class Upsample(nn.Sequential):

  def __init__(self, fin, fout):
    super().__init__(nn.Upsample(scale_factor=2, mode="nearest"),
                     nn.Conv1d(fin, fout, 3, padding=1))


class UNet(nn.Module):

  def __init__(self, c: dict):
    super().__init__()
    d, emb = c["dim"], 4 * c["dim"]
    heads, dh, cc = c["attn_heads"], c["attn_dim_head"], c["context_channels"]
    theta = c["sinusoidal_pos_emb_theta"]
    dims = [d] + [d * m for m in c["dim_mults"]]
    pairs = list(zip(dims[:-1], dims[1:], strict=False))
    self.init_conv = nn.Conv1d(c["channels"], d, 7, padding=3)
    self.time_noise_mlp = embedding_mlp(d, emb, theta)
    self.time_temporal_pos_emb = embedding_mlp(emb, emb, theta)
    self.context_mlp = nn.Sequential(
        nn.Linear(c["context_dim"], d), nn.GELU(), nn.Linear(d, d),
        nn.Linear(d, d))

    def temporal(w):
      return TemporalWrap(TemporalAttention(w, heads, dh, emb, cc))

    last = len(pairs) - 1
    self.downs = nn.ModuleList([nn.ModuleList([
        ResBlock(i, i, emb), ResBlock(i, i, emb),
        CrossAttention(i, heads, dh, True, cc), temporal(i),
        nn.Conv1d(i, o, 3, padding=1) if n == last
        else nn.Conv1d(i, o, 4, 2, 1)]) for n, (i, o) in enumerate(pairs)])
    mid = dims[-1]
    self.mid_block1 = ResBlock(mid, mid, emb)
    self.mid_spatial_attn = CrossAttention(mid, heads, dh, False, cc)
    self.mid_temporal_attn = temporal(mid)
    self.mid_block2 = ResBlock(mid, mid, emb)
    self.ups = nn.ModuleList([nn.ModuleList([
        ResBlock(o + i, o, emb), ResBlock(o + i, o, emb),
        CrossAttention(o, heads, dh, True, cc), temporal(o),
        nn.Conv1d(o, i, 3, padding=1) if n == last else Upsample(o, i)])
        for n, (i, o) in enumerate(reversed(pairs))])
    self.final_res_block = ResBlock(2 * d, d, emb)
    self.final_conv = nn.Conv1d(d, c["channels"], 1)

  def forward(self, x, c_noise, ctx):
    """x (B, t, fs, L); c_noise (B, t); ctx (B, t, 3 fs, E)."""
    b, t = x.shape[:2]
    x = x.flatten(0, 1)
    ctx = ctx.flatten(0, 1)
    noise = self.time_noise_mlp(c_noise.flatten())
    pos = self.time_temporal_pos_emb(torch.arange(t, dtype=torch.float32))
    x = self.init_conv(x)
    stem, skips = x, []
    for res1, res2, cross, temp, resample in self.downs:
      x = res1(x, noise)
      skips.append(x)
      x = temp(cross(res2(x, noise), ctx), pos, b)
      skips.append(x)
      x = resample(x)
    x = self.mid_block1(x, noise)
    x = self.mid_temporal_attn(self.mid_spatial_attn(x, ctx), pos, b)
    x = self.mid_block2(x, noise)
    for res1, res2, cross, temp, resample in self.ups:
      x = res1(torch.cat([x, skips.pop()], 1), noise)
      x = res2(torch.cat([x, skips.pop()], 1), noise)
      x = resample(temp(cross(x, ctx), pos, b))
    x = self.final_res_block(torch.cat([x, stem], 1), noise)
    out = self.final_conv(x)
    return out.reshape(b, t, *out.shape[1:])


def signal_mlp(width: int):
  return nn.Sequential(nn.Linear(1, width), nn.ReLU(),
                       nn.Linear(width, width), nn.Linear(width, width))


class ControlEmbedding(nn.Module):

  def __init__(self, width: int):
    super().__init__()
    self.emotion = signal_mlp(width)
    self.pain_expressive = signal_mlp(width)
    self.stimulus_abs = signal_mlp(width)


class PainDiffusion(nn.Module):
  """The released module pair: `model` (U-Net) and `ctrl_emb`."""

  def __init__(self, conf: dict):
    super().__init__()
    self.conf = conf
    self.model = UNet(conf["MODEL"])
    self.ctrl_emb = ControlEmbedding(conf["MODEL"]["context_dim"])

  def context(self, emotion, expr, stim, drop):
    """Raw per-frame signals (B, T) each -> (B, T/fs, 3 fs, E).

    A dropped signal is the raw value 0 (training), normalised, embedded;
    channels are signal-major (training's 'c b l fs d -> b l (c fs) d').
    """
    stats = self.conf["DATA_STATS"]
    fs = self.conf["DIFFUSION"]["frame_stack"]
    out = []
    for i, (v, key, mlp) in enumerate(zip(
        (emotion, expr, stim), ("emotion", "expressiveness", "stimulus_abs"),
        (self.ctrl_emb.emotion, self.ctrl_emb.pain_expressive,
         self.ctrl_emb.stimulus_abs), strict=True)):
      v = torch.where(drop[:, i:i + 1], torch.zeros_like(v), v)
      v = (v - stats[key]["mean"]) / stats[key]["std"]
      e = mlp(v[..., None])  # (B, T, E)
      out.append(e.reshape(e.shape[0], -1, fs, e.shape[-1]))
    return torch.cat(out, dim=2)

  def forward(self, x, sigma, emotion, expr, stim, drop):
    """D(x; sigma): x (B, t, fs, L), sigma (B, t) -> (B, t, fs, L)."""
    s = sigma[..., None, None]
    c_in = (s ** 2 + SIGMA_DATA ** 2) ** -0.5
    c_skip = SIGMA_DATA ** 2 / (s ** 2 + SIGMA_DATA ** 2)
    c_out = s * SIGMA_DATA * c_in
    f = self.model(c_in * x, torch.log(sigma) / 4,
                   self.context(emotion, expr, stim, drop))
    return c_skip * x + c_out * f


def randomise(module: nn.Module, seed: int = 0) -> None:
  """Every parameter, norm gains included, ~ N(0, 1/fan_in) (gains
  around 1), so no mapping error hides behind a constant."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in module.named_parameters():
      if name.endswith(".g"):
        p.copy_(1.0 + 0.5 * torch.randn(p.shape, generator=gen))
      else:
        fan_in = p[0].numel() if p.ndim > 1 else 4
        p.copy_(torch.randn(p.shape, generator=gen) * fan_in ** -0.5)
