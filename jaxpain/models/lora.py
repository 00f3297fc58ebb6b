"""LoRA adapters (rank-r additive updates) over frozen base weights.

`LoRADense` is the one layer the backbone uses for every projection. Its base
kernel is a frozen `BaseParam`; its adapters are `LoRAParam`s stacked along a
leading *adapter* axis, so the pain and the neutral encoder can hold separate
adapters on one stored base. A call names, per batch group, which adapter it
uses (`groups`): the base GEMM runs once on all rows, the two rank-r deltas
on their halves (peft semantics: y = W x + b + (alpha/r) * B A dropout(x)).

`merge` / `unmerge` fold the deltas into per-adapter kernels for inference.
The base is never modified, so unmerge is exact.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxpain.models import layers


class LoRAParam(nnx.Param):
  """A trainable low-rank adapter factor (A or B)."""


class MergedKernel(nnx.Variable):
  """Base + adapter delta per adapter, present only after `merge`."""


@dataclasses.dataclass(frozen=True)
class LoRAConfig:
  """LoRA hyper-parameters (peft names).

  Attributes:
    rank: r, the adapter rank; 0 disables LoRA.
    alpha: scaling numerator; the delta is scaled by alpha / rank.
    dropout: dropout rate on the adapter input (training only).
  """

  rank: int = 8
  alpha: float = 16.0
  dropout: float = 0.1

  @property
  def scale(self) -> float:
    return self.alpha / self.rank


class LoRADense(nnx.Module):
  """Dense layer over multi-dimensional in/out shapes, with LoRA.

  The kernel has shape `in_shape + out_shape` (e.g. (D, 3, H, Dh) for a
  fused qkv) so heads stay a separate, shardable axis.

  Args:
    in_shape: trailing input dims contracted by the layer.
    out_shape: output dims.
    in_names / out_names: logical axis names for those dims.
    use_bias: whether the base layer has a bias.
    kernel_init: initialiser for the base kernel.
    lora: adapter settings, or None for a plain frozen layer.
    num_adapters: how many adapter sets are stacked (1, or 2 for a shared
      pain/neutral base).
    param_type: variable type of the base (`BaseParam`: frozen).
    dtype: compute dtype.
    param_dtype: storage dtype.
  """

  def __init__(
    self,
    in_shape: Sequence[int],
    out_shape: Sequence[int],
    *,
    in_names: layers.Names,
    out_names: layers.Names,
    use_bias: bool,
    kernel_init,
    lora: LoRAConfig | None = None,
    num_adapters: int = 1,
    param_type: type[nnx.Param] = layers.BaseParam,
    dtype=jnp.float32,
    param_dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
    self.dtype = dtype
    self.lora = lora if lora is not None and lora.rank > 0 else None
    self.kernel = layers.make_param(
      param_type, kernel_init, rngs.params(), self.in_shape + self.out_shape,
      (*in_names, *out_names), param_dtype)
    self.bias = nnx.data(None)
    if use_bias:
      self.bias = layers.make_param(
        param_type, layers.constant(0.0), rngs.params(), self.out_shape,
        out_names, param_dtype)
    self.lora_a = self.lora_b = nnx.data(None)
    self.merged = nnx.data(None)
    if self.lora is not None:
      self._make_adapters(in_names, out_names, num_adapters, param_dtype, rngs)

  def _make_adapters(self, in_names, out_names, g, param_dtype, rngs):
    """A: Kaiming-uniform (a=sqrt 5) = U(+-1/sqrt(fan_in)); B: zeros."""
    r = self.lora.rank
    fan_in = layers.prod(self.in_shape)
    self.lora_a = layers.make_param(
      LoRAParam, layers.torch_linear_init(fan_in), rngs.params(),
      (g, *self.in_shape, r), ('adapter', *in_names, 'lora_rank'),
      param_dtype)
    self.lora_b = layers.make_param(
      LoRAParam, layers.constant(0.0), rngs.params(),
      (g, r, *self.out_shape), ('adapter', 'lora_rank', *out_names),
      param_dtype)

  @property
  def num_adapters(self) -> int:
    return 0 if self.lora_a is None else self.lora_a.shape[0]

  def __call__(
    self,
    x: jax.Array,
    *,
    groups: tuple[int, ...] = (0,),
    key: jax.Array | None = None,
  ) -> jax.Array:
    """Applies the layer.

    Args:
      x: (batch, ..., *in_shape); the batch splits into len(groups)
        interleaved groups: row r belongs to group r % len(groups).
      groups: adapter index used by each batch group (static).
      key: dropout key for the adapter input; None = deterministic.

    Returns:
      (batch, ..., *out_shape) in the compute dtype.
    """
    x = x.astype(self.dtype)
    n_in = len(self.in_shape)
    if self.merged is not None:
      w = _select(self.merged[...], groups).astype(self.dtype)
      y = _grouped(x, len(groups), lambda xg: layers.contract(
        xg, w, n_in, batch=True))
    else:
      y = layers.contract(x, self.kernel[...].astype(self.dtype), n_in)
      if self.lora is not None:
        y = y + self._delta(x, groups, key)
    if self.bias is not None:
      y = y + self.bias[...].astype(self.dtype)
    return y

  def _delta(self, x, groups, key):
    a = _select(self.lora_a[...], groups).astype(self.dtype)
    b = _select(self.lora_b[...], groups).astype(self.dtype)
    n_in = len(self.in_shape)

    def f(xg):
      xg = layers.dropout(xg, self.lora.dropout, key)
      h = layers.contract(xg, a, n_in, batch=True)
      return layers.contract(h, b, 1, batch=True) * self.lora.scale

    return _grouped(x, len(groups), f)

  def merged_kernels(self) -> jax.Array:
    """Base + scale * A B for every adapter: (G, *in_shape, *out_shape)."""
    a, b = self.lora_a[...], self.lora_b[...]
    delta = layers.contract(a, b, 1, batch=True) * self.lora.scale
    return self.kernel[...][None] + delta.astype(self.kernel[...].dtype)


def _select(w: jax.Array, groups: tuple[int, ...]) -> jax.Array:
  """Stacked per-adapter weights for the given batch groups (static)."""
  if tuple(groups) == tuple(range(w.shape[0])):
    return w
  if max(groups) >= w.shape[0]:
    raise ValueError(
      f'adapter index {max(groups)} requested, layer has {w.shape[0]}')
  return w[jnp.asarray(groups)]


def _grouped(x: jax.Array, g: int, f) -> jax.Array:
  """Applies f to x viewed as (g, batch/g, ...), then restores the batch.

  Groups are interleaved (row r is in group r % g), not consecutive: with
  the batch sharded along its rows, a pain image and its neutral reference
  (rows 2i, 2i + 1) then stay on one device, and the regrouping is a local
  reshape instead of a cross-device reshuffle (all-to-all).
  """
  if x.shape[0] % g:
    raise ValueError(f'batch {x.shape[0]} does not split into {g} groups')
  if g == 1:
    return f(x[None])[0]
  xg = jnp.moveaxis(x.reshape((x.shape[0] // g, g) + x.shape[1:]), 1, 0)
  y = f(xg)
  return jnp.moveaxis(y, 0, 1).reshape((x.shape[0],) + y.shape[2:])


def lora_layers(model: nnx.Module):
  """All LoRA-carrying layers of a model, with their paths."""
  return [
    (path, m) for path, m in nnx.iter_modules(model)
    if isinstance(m, LoRADense) and m.lora is not None
  ]


def merge(model: nnx.Module) -> nnx.Module:
  """Folds every adapter into a per-adapter kernel (in place).

  Inference then runs one GEMM per layer and group instead of three. The
  frozen base and the adapters are kept, so `unmerge` is exact. Call outside
  of jit; re-merge after the adapters change.

  Returns:
    The same model, for chaining.
  """
  for _, m in lora_layers(model):
    m.merged = MergedKernel(m.merged_kernels())
  return model


def unmerge(model: nnx.Module) -> nnx.Module:
  """Drops merged kernels; the model computes base + LoRA again."""
  for _, m in lora_layers(model):
    m.merged = None
  return model


def is_merged(model: nnx.Module) -> bool:
  return any(m.merged is not None for _, m in lora_layers(model))
