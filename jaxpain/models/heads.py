"""ViTPain heads: neutral cross-attention, PSPI, binary and AU heads.

Shapes and quirks follow the released model (reference.md §B.2): hidden
sizes 512/256/128 whatever the width, dropout p, p, 0.6p, 0.6p in the PSPI
MLP, one *shared* AU MLP after single-head attention pooling with six query
vectors, ReLU on AU outputs. Heads run in float32 (they are tiny).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxpain.models import layers

AU_NAMES = ('AU4', 'AU6', 'AU7', 'AU9', 'AU10', 'AU43')
PSPI_THRESHOLDS = (1, 2, 3)


class CrossAttention(nnx.Module):
  """T' = LayerNorm(T_p + MHA(T_p, T_n, T_n)), torch MultiheadAttention.

  In-projection Xavier-uniform over torch's fused (3D, D) weight with zero
  bias; out-projection torch-Linear init with zero bias (torch defaults).
  """

  def __init__(
    self, width: int, heads: int, *, dtype, param_dtype, rngs, impl=None,
    init_scheme: str = 'released',
  ):
    if width % heads:
      raise ValueError(f'width {width} not divisible by {heads} heads')
    dh = width // heads
    self.dtype, self.impl = dtype, impl
    bound = math.sqrt(6.0 / (width + 3 * width))
    mk = lambda init, shape, names: layers.make_param(
      nnx.Param, init, rngs.params(), shape, names, param_dtype)
    self.in_kernel = mk(
      layers.uniform(bound), (width, 3, heads, dh),
      ('embed', 'qkv', 'heads', 'kv'))
    self.in_bias = mk(
      layers.constant(0.0), (3, heads, dh), ('qkv', 'heads', 'kv'))
    self.out_kernel = mk(
      layers.head_kernel_init(width, init_scheme), (heads, dh, width),
      ('heads', 'kv', 'embed'))
    self.out_bias = mk(layers.constant(0.0), (width,), ('embed',))
    self.norm = layers.LayerNorm(width, param_dtype=param_dtype, rngs=rngs)

  def __call__(self, tp: jax.Array, tn: jax.Array) -> jax.Array:
    dt = self.dtype
    w = self.in_kernel[...].astype(dt)
    b = self.in_bias[...].astype(dt)
    q = jnp.einsum('btd,dhk->bthk', tp.astype(dt), w[:, 0]) + b[0]
    k = jnp.einsum('bsd,dhk->bshk', tn.astype(dt), w[:, 1]) + b[1]
    v = jnp.einsum('bsd,dhk->bshk', tn.astype(dt), w[:, 2]) + b[2]
    o = jax.nn.dot_product_attention(q, k, v, implementation=self.impl)
    o = jnp.einsum('bthk,hkd->btd', o, self.out_kernel[...].astype(dt))
    o = o + self.out_bias[...].astype(dt)
    return self.norm(tp.astype(dt) + o)


class PSPIHead(nnx.Module):
  """LN -> drop p -> D-512 GELU -> drop p -> 256 GELU -> drop .6p -> 128
  GELU -> drop .6p -> 1 (a logit; the sigmoid is applied by the caller)."""

  def __init__(self, width: int, rate: float, *, param_dtype, rngs,
               init_scheme: str = 'released'):
    self.norm = layers.LayerNorm(width, param_dtype=param_dtype, rngs=rngs)
    dims = (width, 512, 256, 128, 1)
    names = [('embed', 'mlp')] + [(None, None)] * 3
    self.linears = nnx.List([
      layers.Linear(a, b, names=n, init_scheme=init_scheme,
                    param_dtype=param_dtype, rngs=rngs)
      for a, b, n in zip(dims[:-1], dims[1:], names, strict=True)
    ])
    self.rates = (rate, rate, 0.6 * rate, 0.6 * rate)

  def __call__(self, x: jax.Array, key: jax.Array | None) -> jax.Array:
    x = self.norm(x)
    for i, (lin, r) in enumerate(zip(self.linears, self.rates, strict=True)):
      if i:
        x = layers.gelu(x)
      x = lin(layers.dropout(x, r, layers.fold(key, i)))
    return x[..., 0]


class BinaryHeads(nnx.Module):
  """Three LN -> drop p -> Linear(D, 1) heads (PSPI >= 1, 2, 3), stacked."""

  def __init__(self, width: int, rate: float, *, param_dtype, rngs,
               init_scheme: str = 'released'):
    n = len(PSPI_THRESHOLDS)
    self.rate = rate
    self.norm = layers.LayerNorm(
      width, lead=(n,), lead_names=(None,), param_dtype=param_dtype,
      rngs=rngs)
    self.kernel = layers.make_param(
      nnx.Param, layers.head_kernel_init(width, init_scheme), rngs.params(),
      (n, width), (None, 'embed'), param_dtype)
    self.bias = layers.make_param(
      nnx.Param, layers.head_bias_init(width, init_scheme), rngs.params(),
      (n,), (None,), param_dtype)

  def __call__(self, x: jax.Array, key: jax.Array | None) -> jax.Array:
    n = len(PSPI_THRESHOLDS)
    x = self.norm(jnp.broadcast_to(x[:, None], (x.shape[0], n, x.shape[-1])))
    x = layers.dropout(x, self.rate, key)
    return jnp.einsum('bhd,hd->bh', x, self.kernel[...]) + self.bias[...]


class AUHead(nnx.Module):
  """Six N(0,1) queries attention-pool the patch tokens (single head, no
  projections, scale 1/sqrt(D)); shared LN -> drop -> D-512 GELU -> drop ->
  512-1 -> ReLU.

  Args:
    frozen_queries: store the queries as a `FrozenParam` (the released
      optimizer never updated them; official_compat).
  """

  def __init__(
    self, width: int, rate: float, *, frozen_queries: bool, param_dtype,
    rngs, init_scheme: str = 'released',
  ):
    qtype = layers.FrozenParam if frozen_queries else nnx.Param
    self.queries = layers.make_param(
      qtype, jax.nn.initializers.normal(1.0), rngs.params(),
      (len(AU_NAMES), width), ('au', 'embed'), param_dtype)
    self.norm = layers.LayerNorm(width, param_dtype=param_dtype, rngs=rngs)
    self.fc = layers.Linear(
      width, 512, names=('embed', 'mlp'), init_scheme=init_scheme,
      param_dtype=param_dtype, rngs=rngs)
    self.out = layers.Linear(
      512, 1, names=('mlp', None), init_scheme=init_scheme,
      param_dtype=param_dtype, rngs=rngs)
    self.rate = 0.6 * rate

  def __call__(self, patches: jax.Array, key: jax.Array | None):
    q = self.queries[...].astype(jnp.float32)
    scores = jnp.einsum('qd,bnd->bqn', q, patches) / math.sqrt(q.shape[-1])
    pooled = jnp.einsum('bqn,bnd->bqd', jax.nn.softmax(scores, -1), patches)
    h = layers.dropout(self.norm(pooled), self.rate, layers.fold(key, 0))
    h = layers.gelu(self.fc(h))
    h = layers.dropout(h, self.rate, layers.fold(key, 1))
    return jax.nn.relu(self.out(h)[..., 0])
