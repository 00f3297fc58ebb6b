"""The released PainDiffusion U-Net's building blocks, in Flax NNX.

Layout: activations are channel-last, (N, L, C), where L is the axis the
released network convolves along (the 128 FLAME features of a frame, or
the embedding width of the condition context) and N folds batch and
tokens. The released code is channel-first (N, C, L); the weight mapping
(`weights.py`) transposes its tensors, the activations never are.

Every leaf layer (`Conv`, `Linear`, `RMSNorm`) knows the PyTorch tensor
names and shapes it corresponds to (`torch_params`, `from_torch`); every
composite module names its children as the released state_dict does
(`torch_children`), so the key names live next to the layer they describe
and the loader walks the module tree (reference.md §G.3). Parameters are
built from `rngs` only so a module can exist on its own; `weights.py`
builds the tree abstractly and fills every parameter from the file.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def _param(rngs: nnx.Rngs, shape: tuple[int, ...], fan_in: int):
  return nnx.Param(jax.random.normal(rngs.params(), shape, jnp.float32)
                   * fan_in ** -0.5)


class Conv(nnx.Module):
  """1-D convolution along L, channel-last; kernel (K, I, O).

  PyTorch `nn.Conv1d` stores weight (O, I, K): `from_torch` transposes.
  """

  def __init__(self, fin: int, fout: int, kernel: int = 1, *,
               stride: int = 1, padding: int = 0, bias: bool = True,
               rngs: nnx.Rngs):
    self.stride, self.padding = stride, padding
    self.kernel = _param(rngs, (kernel, fin, fout), fin * kernel)
    self.bias = (nnx.Param(jnp.zeros((fout,), jnp.float32)) if bias
                 else None)

  def __call__(self, x):
    w = self.kernel[...]
    if w.shape[0] == 1 and self.stride == 1 and not self.padding:
      y = x @ w[0]
    else:
      y = jax.lax.conv_general_dilated(
          x, w, (self.stride,), [(self.padding, self.padding)],
          dimension_numbers=("NWC", "WIO", "NWC"))
    return y if self.bias is None else y + self.bias[...]

  def torch_params(self) -> dict[str, tuple[int, ...]]:
    k, i, o = self.kernel.shape
    out = {"weight": (o, i, k)}
    if self.bias is not None:
      out["bias"] = (o,)
    return out

  def from_torch(self, tensors: dict[str, np.ndarray]) -> None:
    self.kernel.set_value(
        jnp.asarray(np.transpose(tensors["weight"], (2, 1, 0))))
    if self.bias is not None:
      self.bias.set_value(jnp.asarray(tensors["bias"]))


class Linear(nnx.Module):
  """x @ W + b; kernel (I, O). PyTorch `nn.Linear` stores weight (O, I)."""

  def __init__(self, fin: int, fout: int, *, rngs: nnx.Rngs):
    self.kernel = _param(rngs, (fin, fout), fin)
    self.bias = nnx.Param(jnp.zeros((fout,), jnp.float32))

  def __call__(self, x):
    return x @ self.kernel[...] + self.bias[...]

  def torch_params(self) -> dict[str, tuple[int, ...]]:
    i, o = self.kernel.shape
    return {"weight": (o, i), "bias": (o,)}

  def from_torch(self, tensors: dict[str, np.ndarray]) -> None:
    self.kernel.set_value(jnp.asarray(np.transpose(tensors["weight"])))
    self.bias.set_value(jnp.asarray(tensors["bias"]))


class RMSNorm(nnx.Module):
  """x / ||x||_C * g * sqrt(C): an L2 normalisation over channels.

  PyTorch stores the gain as g (1, C, 1).
  """

  def __init__(self, channels: int, *, rngs: nnx.Rngs):
    del rngs
    self.g = nnx.Param(jnp.ones((channels,), jnp.float32))

  def __call__(self, x):
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
    # F.normalize divides by max(||x||, 1e-12).
    scale = math.sqrt(x.shape[-1]) / jnp.maximum(norm, 1e-12)
    return x * scale * self.g[...]

  def torch_params(self) -> dict[str, tuple[int, ...]]:
    return {"g": (1, self.g.shape[0], 1)}

  def from_torch(self, tensors: dict[str, np.ndarray]) -> None:
    self.g.set_value(jnp.asarray(tensors["g"].reshape(-1)))


def film(x, scale_shift):
  """x * (scale + 1) + shift; scale_shift (..., 2C) broadcast over L."""
  scale, shift = jnp.split(scale_shift, 2, axis=-1)
  return x * (scale + 1.0) + shift


def sinusoid(x, dim: int, theta: float):
  """(N,) -> (N, dim): [sin(x f), cos(x f)], f = theta^(-i / (dim/2 - 1))."""
  half = dim // 2
  freqs = jnp.exp(-math.log(theta) / (half - 1) * jnp.arange(half))
  ang = x.astype(jnp.float32)[:, None] * freqs[None, :]
  return jnp.concatenate([jnp.sin(ang), jnp.cos(ang)], axis=-1)


class EmbeddingMLP(nnx.Module):
  """sinusoid -> Linear -> GELU -> Linear (torch Sequential 0..3)."""

  def __init__(self, features: int, width: int, theta: float, *,
               rngs: nnx.Rngs):
    self.features, self.theta = features, theta
    self.fc1 = Linear(features, width, rngs=rngs)
    self.fc2 = Linear(width, width, rngs=rngs)

  def torch_children(self) -> dict[str, str]:
    return {"fc1": "1", "fc2": "3"}

  def __call__(self, x):
    h = sinusoid(x, self.features, self.theta)
    return self.fc2(jax.nn.gelu(self.fc1(h), approximate=False))


class ResBlock(nnx.Module):
  """Conv k3, RMSNorm, FiLM(noise), SiLU; Conv k3, RMSNorm, SiLU; + skip."""

  def __init__(self, fin: int, fout: int, emb: int, *, rngs: nnx.Rngs):
    self.film = Linear(emb, 2 * fout, rngs=rngs)
    self.conv1 = Conv(fin, fout, 3, padding=1, rngs=rngs)
    self.norm1 = RMSNorm(fout, rngs=rngs)
    self.conv2 = Conv(fout, fout, 3, padding=1, rngs=rngs)
    self.norm2 = RMSNorm(fout, rngs=rngs)
    self.skip = Conv(fin, fout, 1, rngs=rngs) if fin != fout else None

  def torch_children(self) -> dict[str, str]:
    names = {"film": "time_mlp.1", "conv1": "block1.proj",
             "norm1": "block1.norm", "conv2": "block2.proj",
             "norm2": "block2.norm"}
    if self.skip is not None:
      names["skip"] = "res_conv"
    return names

  def __call__(self, x, emb):
    """x (N, L, fin); emb (N, E) noise embedding -> (N, L, fout)."""
    ss = self.film(jax.nn.silu(emb))[:, None, :]
    h = jax.nn.silu(film(self.norm1(self.conv1(x)), ss))
    h = jax.nn.silu(self.norm2(self.conv2(h)))
    return h + (x if self.skip is None else self.skip(x))


def _heads(x, heads: int):
  """(N, L, h*d) -> (N, h, L, d)."""
  n, length, _ = x.shape
  return x.reshape(n, length, heads, -1).transpose(0, 2, 1, 3)


class Attention(nnx.Module):
  """Multi-head attention, softmax (full) or linear.

  q from x, k and v from `context` (or from x when there is none).
  Linear attention (Shen et al.): softmax of q over each head's channels,
  of k over positions, out = q . (k^T v); its output projection is
  followed by an RMSNorm.
  """

  def __init__(self, dim: int, heads: int, dim_head: int, linear: bool, *,
               rngs: nnx.Rngs):
    hidden = heads * dim_head
    self.heads, self.dim_head, self.linear = heads, dim_head, linear
    self.to_q = Conv(dim, hidden, bias=False, rngs=rngs)
    self.to_k = Conv(dim, hidden, bias=False, rngs=rngs)
    self.to_v = Conv(dim, hidden, bias=False, rngs=rngs)
    self.to_out = Conv(hidden, dim, rngs=rngs)
    self.out_norm = RMSNorm(dim, rngs=rngs) if linear else None

  def torch_children(self) -> dict[str, str]:
    names = {"to_q": "to_q", "to_k": "to_k", "to_v": "to_v"}
    if self.linear:
      names.update(to_out="to_out.0", out_norm="to_out.1")
    else:
      names["to_out"] = "to_out"
    return names

  def __call__(self, x, context=None):
    kv = x if context is None else context
    q, k, v = (_heads(f(a), self.heads) for f, a in
               ((self.to_q, x), (self.to_k, kv), (self.to_v, kv)))
    scale = self.dim_head ** -0.5
    if self.linear:
      q = jax.nn.softmax(q, axis=-1) * scale
      k = jax.nn.softmax(k, axis=-2)
      ctx = jnp.einsum("nhjd,nhje->nhde", k, v)
      out = jnp.einsum("nhde,nhid->nhie", ctx, q)
    else:
      sim = jnp.einsum("nhid,nhjd->nhij", q * scale, k)
      out = jnp.einsum("nhij,nhjd->nhid", jax.nn.softmax(sim, axis=-1), v)
    n, h, length, d = out.shape
    out = self.to_out(out.transpose(0, 2, 1, 3).reshape(n, length, h * d))
    return out if self.out_norm is None else self.out_norm(out)


class CrossAttention(nnx.Module):
  """x + Attention(RMSNorm(x), context_proj(context)).

  `context_channels` None: self-attention without a context projection
  (the temporal blocks: the released module holds a `context_proj` there
  that its forward never calls; the loader reads and ignores it).
  """

  def __init__(self, dim: int, heads: int, dim_head: int, linear: bool,
               context_channels: int | None, *, rngs: nnx.Rngs):
    self.attn = Attention(dim, heads, dim_head, linear, rngs=rngs)
    self.context_proj = (Conv(context_channels, dim, rngs=rngs)
                         if context_channels else None)
    self.norm = RMSNorm(dim, rngs=rngs)

  def torch_children(self) -> dict[str, str]:
    names = {"attn": "attn", "norm": "norm"}
    if self.context_proj is not None:
      names["context_proj"] = "context_proj"
    return names

  def __call__(self, x, context=None, scale_shift=None):
    """x (N, L, C); context (N, E, context_channels) or None."""
    if self.context_proj is not None and context is not None:
      context = self.context_proj(context)
    if scale_shift is not None:
      x = film(x, scale_shift)
    return self.attn(self.norm(x), context) + x


class TemporalBlock(nnx.Module):
  """Bidirectional softmax self-attention over the tokens of a window.

  Folds (B*W, L, C) to (B*L, W, C); two attention sub-blocks, the first
  FiLM-modulated per token by the token-index embedding; outer residual.
  """

  def __init__(self, dim: int, heads: int, dim_head: int, emb: int,
               context_channels: int, *, rngs: nnx.Rngs):
    self.context_channels = context_channels
    self.film = Linear(emb, 2 * dim, rngs=rngs)
    self.block1 = CrossAttention(dim, heads, dim_head, False, None,
                                 rngs=rngs)
    self.block2 = CrossAttention(dim, heads, dim_head, False, None,
                                 rngs=rngs)

  def torch_children(self) -> dict[str, str]:
    return {"film": "time_mlp.1", "block1": "block1", "block2": "block2"}

  def torch_ignored(self) -> dict[str, tuple[int, ...]]:
    """The unused context projections the released module holds."""
    dim = self.film.kernel.shape[1] // 2
    out = {}
    for block in ("block1", "block2"):
      out[f"{block}.context_proj.weight"] = (dim, self.context_channels, 1)
      out[f"{block}.context_proj.bias"] = (dim,)
    return out

  def __call__(self, x, pos_emb, batch: int):
    """x (B*W, L, C); pos_emb (W, E) token-index embedding."""
    bw, length, c = x.shape
    w = bw // batch
    h = x.reshape(batch, w, length, c).transpose(0, 2, 1, 3)
    h = h.reshape(batch * length, w, c)
    ss = self.film(jax.nn.silu(pos_emb))[None]  # (1, W, 2C)
    h = h + self.block2(self.block1(h, scale_shift=ss))
    h = h.reshape(batch, length, w, c).transpose(0, 2, 1, 3)
    return h.reshape(bw, length, c)
