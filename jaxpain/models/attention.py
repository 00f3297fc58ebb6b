"""Softmax attention in head-major layout with a written-out backward pass.

`jax.nn.dot_product_attention` takes (B, N, heads, Dh) and, on backends
whose GEMMs want the batch axes leading (XLA CPU), transposes q, k, v and
the output around each of its batched matmuls, forward and backward, and
autodiff keeps the (B, heads, N, N) probabilities for the backward pass.
`attention` takes (B, heads, N, Dh), so every matmul is in canonical
layout, and keeps only q, k, v, the output and one log-sum-exp per query:
the backward pass recomputes the probabilities from them, as flash
attention does. The forward numerics are those of
`jax.nn.dot_product_attention(implementation='xla')`: float32 logits and
softmax, probabilities cast to the value dtype before the second matmul.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_F32 = jnp.float32


def _logits(q, k):
  scale = 1.0 / math.sqrt(q.shape[-1])
  s = jnp.einsum('bhqd,bhkd->bhqk', q, k, preferred_element_type=_F32)
  return s * jnp.asarray(scale, _F32)


@jax.custom_vjp
def attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
  """softmax(q k^T / sqrt(Dh)) v for (B, heads, N, Dh) inputs.

  Args:
    q: queries (B, H, Nq, Dh).
    k: keys (B, H, Nk, Dh).
    v: values (B, H, Nk, Dh).

  Returns:
    (B, H, Nq, Dh) in v's dtype.
  """
  return _fwd(q, k, v)[0]


def _fwd(q, k, v):
  s = _logits(q, k)
  m = jax.lax.stop_gradient(s.max(-1, keepdims=True))
  e = jnp.exp(s - m)
  denom = e.sum(-1, keepdims=True)
  p = (e / denom).astype(v.dtype)
  o = jnp.einsum('bhqk,bhkd->bhqd', p, v)
  lse = m + jnp.log(denom)
  return o, (q, k, v, o, lse)


def _bwd(res, do):
  """Flash attention's backward pass, on the transposed probabilities.

  P^T (keys x queries) is recomputed from q, k and the log-sum-exp, so that
  every matmul contracts its left operand over the minor axis (XLA CPU runs
  only those on its fast GEMM path): dV = P^T dO, dK = dS^T q, and
  dQ^T = k^T dS^T.
  """
  q, k, v, o, lse = res
  scale = 1.0 / math.sqrt(q.shape[-1])
  s_t = jnp.einsum('bhkd,bhqd->bhkq', k, q, preferred_element_type=_F32)
  p_t = jnp.exp(s_t * jnp.asarray(scale, _F32) - _t(lse))
  dv = jnp.einsum('bhkq,bhqd->bhkd', p_t.astype(v.dtype), do)
  dp_t = jnp.einsum('bhkd,bhqd->bhkq', v, do, preferred_element_type=_F32)
  # sum_k p dp = sum_d do o: one (B, H, Nq) reduction instead of (.., Nk).
  delta = (do.astype(_F32) * o.astype(_F32)).sum(-1, keepdims=True)
  ds_t = (p_t * (dp_t - _t(delta)) * scale).astype(q.dtype)
  dk = jnp.einsum('bhkq,bhqd->bhkd', ds_t, q)
  dq = _t(jnp.einsum('bhdk,bhkq->bhdq', _t(k), ds_t))
  return dq, dk, dv.astype(v.dtype)


def _t(x):
  return jnp.swapaxes(x, -1, -2)


attention.defvjp(_fwd, _bwd)
