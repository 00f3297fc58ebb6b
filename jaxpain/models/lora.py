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
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.custom_derivatives import SymbolicZero

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
    elif self.lora is None:
      y = layers.contract(x, self.kernel[...].astype(self.dtype), n_in)
    elif key is None or self.lora.dropout <= 0.0:
      y = self._folded(x, groups)
    else:
      y = self._dropped(x, groups, key)
    if self.bias is not None:
      y = y + self.bias[...].astype(self.dtype)
    return y

  def _factors(self, groups):
    """A (G, in, r) and B (G, r, out) of the groups, in the compute dtype."""
    r, g = self.lora.rank, len(groups)
    a = _select(self.lora_a[...], groups).astype(self.dtype)
    b = _select(self.lora_b[...], groups).astype(self.dtype)
    return a.reshape(g, -1, r), b.reshape(g, r, -1)

  def _flat_call(self, x, groups, fn):
    """fn on x as (G, rows, in) -> (G, rows, out), restored to x's shape.

    The groups are interleaved as everywhere in this module (`_grouped`):
    row r of the batch belongs to group r % G.
    """
    n_in, g = len(self.in_shape), len(groups)
    lead = x.shape[:x.ndim - n_in]

    def per_group(xg):  # (G, batch / G, *lead[1:], *in_shape)
      y = fn(xg.reshape(g, -1, layers.prod(self.in_shape)))
      return y.reshape(xg.shape[:xg.ndim - n_in] + (-1,))

    y = _grouped(x, g, per_group)
    return y.reshape(*lead, *self.out_shape)

  def _kernel2d(self):
    w = self.kernel[...].astype(self.dtype)
    return w.reshape(layers.prod(self.in_shape), -1)

  def _dropped(self, x, groups, key):
    """x W + scale * B A dropout(x): one fused op (see `lora_dense`)."""
    a, b = self._factors(groups)
    w, cfg = self._kernel2d(), self.lora
    return self._flat_call(x, groups, lambda xg: lora_dense(
      xg, w, a, b, key, cfg.dropout, cfg.scale))

  def _folded(self, x, groups):
    """x (W + scale * A B) per group: one GEMM where nothing is dropped."""
    a, b = self._factors(groups)
    w = self._kernel2d()
    return self._flat_call(x, groups, lambda xg: folded_dense(
      xg, w, a, b, self.lora.scale))

  def merged_kernels(self) -> jax.Array:
    """Base + scale * A B for every adapter: (G, *in_shape, *out_shape)."""
    a, b = self.lora_a[...], self.lora_b[...]
    delta = layers.contract(a, b, 1, batch=True) * self.lora.scale
    return self.kernel[...][None] + delta.astype(self.kernel[...].dtype)


# Fused LoRA ops on grouped, flattened operands: x (G, rows, in), A (G, in,
# r), B (G, r, out), W (in, out). Their backward passes are written out
# because of how XLA CPU runs a matmul: fast (YNNPACK) only where the left
# operand is contracted over its minor axis. Autodiff's order contracted the
# (rows, out) cotangent over rows for dB, which XLA fixed with a transposed
# copy of it, the largest copy of the S/16 step; here the residuals the
# backward pass contracts over rows are kept transposed (x^T, h^T, written
# once in the forward pass), so every matmul is canonical. `symbolic_zeros`
# tells which inputs are differentiated: the images (x of the patch
# embedding) and a frozen base (W) are not, and get no cotangent.


def _t(x):
  return x.transpose(0, 2, 1)


def _perturbed(p) -> tuple | None:
  """A static marker in the residuals: () if p is differentiated."""
  return () if p.perturbed else None


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def lora_dense(x, w, a, b, key, rate: float, scale: float):
  """x W + scale * (dropout(x) A) B per group: peft's LoRA in training."""
  return _lora_fwd_values(x, w, a, b, key, rate, scale)[0]


def _lora_fwd_values(x, w, a, b, key, rate, scale):
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  xd = jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))
  h = jnp.einsum('gmi,gir->gmr', xd, a)
  y = (jnp.einsum('gmi,io->gmo', x, w)
       + jnp.einsum('gmr,gro->gmo', h, b) * scale)
  return y, keep, xd, h


def _lora_fwd(x, w, a, b, key, rate, scale):
  vals = [p.value for p in (x, w, a, b, key)]
  y, keep, xd, h = _lora_fwd_values(*vals, rate, scale)
  x_for_dw = vals[0] if w.perturbed else None
  return y, (keep, _t(xd), _t(h), vals[1], vals[2], vals[3], x_for_dw,
             _perturbed(x))


def _lora_bwd(rate, scale, res, dy):
  keep, xd_t, h_t, w, a, b, x, need_dx = res
  if isinstance(dy, SymbolicZero):
    return (None,) * 5
  db = jnp.einsum('grm,gmo->gro', h_t, dy) * scale
  dh = jnp.einsum('gmo,gro->gmr', dy, b) * scale
  da = jnp.einsum('gim,gmr->gir', xd_t, dh)
  dx = dw = None
  if need_dx is not None:
    dxd = jnp.einsum('gmr,gir->gmi', dh, a)
    dx = jnp.einsum('gmo,io->gmi', dy, w) + jnp.where(
      keep, dxd / (1.0 - rate), jnp.zeros((), dxd.dtype))
  if x is not None:
    dw = jnp.einsum('gmi,gmo->io', x, dy)
  return dx, dw, da, db, None


lora_dense.defvjp(_lora_fwd, _lora_bwd, symbolic_zeros=True)


def _merged(w, a, b, scale):
  return w[None] + jnp.einsum('gir,gro->gio', a, b) * scale


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def folded_dense(x, w, a, b, scale: float):
  """x (W + scale * A B) per group: LoRA without dropout as one GEMM."""
  return jnp.einsum('gmi,gio->gmo', x, _merged(w, a, b, scale))


def _folded_fwd(x, w, a, b, scale):
  vals = [p.value for p in (x, w, a, b)]
  need = (_perturbed(x), _perturbed(w))
  return folded_dense(*vals, scale), (*vals, need)


def _folded_bwd(scale, res, dy):
  x, w, a, b, (need_dx, need_dw) = res
  if isinstance(dy, SymbolicZero):
    return None, None, None, None
  dx = None if need_dx is None else jnp.einsum(
    'gmo,gio->gmi', dy, _merged(w, a, b, scale))
  dw = None if need_dw is None else jnp.einsum('gmi,gmo->io', x, dy)
  h = jnp.einsum('gmi,gir->gmr', x, a)
  dh = jnp.einsum('gmo,gro->gmr', dy, b) * scale
  da = _t(jnp.einsum('gmr,gmi->gri', dh, x))
  db = jnp.einsum('gmr,gmo->gro', h, dy) * scale
  return dx, dw, da, db


folded_dense.defvjp(_folded_fwd, _folded_bwd, symbolic_zeros=True)


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
