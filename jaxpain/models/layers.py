"""Small building blocks shared by the backbone and the ViTPain heads.

The parameter *types* defined here carry the training policy: the optimizer
never sees a `FrozenParam` (the pretrained DINOv3 base is a `BaseParam`, a
`FrozenParam` subclass), so freezing is a property of the variable rather than
of a fragile path regex. Every parameter also carries logical axis names in
its `out_sharding` metadata; the trainer maps them to mesh axes with rules,
and this package never names a mesh axis.

Initialisers follow PyTorch defaults where the released model relied on them
(reference.md §B.2), so a freshly built model is distributed like the
released one before any weights are loaded.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

Shape = tuple[int, ...]
Names = tuple[str | None, ...]


# Every logical axis name a parameter may carry. Weights: 'embed' (model
# width D), 'mlp' (MLP hidden), 'heads', 'kv' (head dim), 'qkv' (the size-3
# q/k/v axis), 'patch' (flattened p*p*C patch), 'norm' (LayerNorm vectors),
# 'lora_rank', 'adapter' (stacked LoRA sets), 'au' (AU queries).
LOGICAL_AXES = ('embed', 'mlp', 'heads', 'kv', 'qkv', 'patch', 'norm',
                'lora_rank', 'adapter', 'au')


def logical_rules(**mesh_axes) -> tuple[tuple[str, object], ...]:
  """A complete rule set for `nnx.logical_axis_rules`.

  Args:
    **mesh_axes: logical name -> mesh axis (or tuple of axes, or None).
      Names left out are replicated; flax rejects names without a rule.

  Returns:
    ((logical, mesh), ...) covering every name in LOGICAL_AXES.
  """
  unknown = set(mesh_axes) - set(LOGICAL_AXES)
  if unknown:
    raise ValueError(f'unknown logical axes {sorted(unknown)}; known: '
                     f'{LOGICAL_AXES}')
  return tuple((n, mesh_axes.get(n)) for n in LOGICAL_AXES)


class FrozenParam(nnx.Param):
  """A parameter the optimizer never updates (kept in checkpoints)."""


class BaseParam(FrozenParam):
  """A frozen weight of the pretrained backbone (the LoRA "base")."""


def make_param(
  param_type: type[nnx.Param],
  init,
  key: jax.Array,
  shape: Shape,
  names: Names,
  param_dtype,
) -> nnx.Param:
  """Creates a parameter with logical axis names attached.

  Args:
    param_type: `nnx.Param` or a subclass (freezing policy).
    init: `jax.nn.initializers`-style callable `(key, shape, dtype)`.
    key: PRNG key.
    shape: parameter shape.
    names: one logical axis name (or None) per dimension.
    param_dtype: storage dtype.

  Returns:
    The parameter. Under `jax.set_mesh` plus `nnx.logical_axis_rules` it is
    born sharded; otherwise it only carries the names.
  """
  if len(names) != len(shape):
    raise ValueError(f'{len(names)} axis names for shape {shape}')
  # Eager sharding needs a mesh; without one (CPU tests, inference) the
  # names are kept as metadata only and the trainer shards explicitly.
  eager = nnx.using_eager_sharding() and _mesh_in_context()
  return param_type(
    init(key, shape, param_dtype), out_sharding=tuple(names),
    eager_sharding=eager)


def _mesh_in_context() -> bool:
  return not jax.sharding.get_abstract_mesh().empty


def torch_linear_init(fan_in: int):
  """U(+-1/sqrt(fan_in)): torch's default for Linear weights and biases."""
  return _uniform(1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0)


def _uniform(bound: float):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def uniform(bound: float):
  """U(-bound, bound) initialiser."""
  return _uniform(bound)


def he_uniform(fan_in: int):
  """U(+-sqrt(6 / fan_in)): variance 2 / fan_in, preserved through GELU."""
  return _uniform(math.sqrt(6.0 / fan_in) if fan_in > 0 else 0.0)


def fan_in_normal(fan_in: int):
  """Truncated normal with std 1 / sqrt(fan_in) (LeCun): unit output scale."""
  return trunc_normal(1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0)


# How fresh parameters are drawn (`init_scheme` of the model configs):
#   'released'  DINOv3's backbone init (truncated normal 0.02, LayerScale
#               1e-5) and torch's Linear defaults in the heads, as the
#               released model is built before its weights are loaded.
#               Right when a pretrained backbone is loaded: the fresh heads
#               then match the released training run.
#   'scratch'   variance-preserving: LeCun-normal backbone kernels, LayerScale
#               1, He-uniform head layers with zero biases. For training
#               without pretrained weights: with 'released', a small fresh
#               backbone passes almost no image signal to the CLS token
#               (0.02 is tuned for width 1024, LayerScale 1e-5 mutes every
#               block), and torch's U(+-1/sqrt(fan_in)) shrinks the signal
#               ~2.5x per layer of the 4-layer PSPI head, so training sits
#               at the mean prediction for thousands of steps.
INIT_SCHEMES = ('released', 'scratch')


def check_init_scheme(scheme: str) -> str:
  if scheme not in INIT_SCHEMES:
    raise ValueError(f'init_scheme {scheme!r} not in {INIT_SCHEMES}')
  return scheme


def head_kernel_init(fan_in: int, scheme: str):
  """Kernel init of a head Linear layer under `scheme`."""
  if check_init_scheme(scheme) == 'scratch':
    return he_uniform(fan_in)
  return torch_linear_init(fan_in)


def head_bias_init(fan_in: int, scheme: str):
  """Bias init of a head Linear layer (torch draws biases like weights)."""
  if check_init_scheme(scheme) == 'scratch':
    return constant(0.0)
  return torch_linear_init(fan_in)


def trunc_normal(std: float):
  """Truncated normal at +-2 (absolute, as timm's `trunc_normal_`)."""
  def init(key, shape, dtype=jnp.float32):
    lo, hi = -2.0 / std, 2.0 / std
    return std * jax.random.truncated_normal(key, lo, hi, shape, dtype)
  return init


def constant(value: float):
  def init(key, shape, dtype=jnp.float32):
    del key
    return jnp.full(shape, value, dtype)
  return init


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
  """Inverted dropout; the identity when `key` is None or rate is 0.

  Keys are threaded explicitly (not stored per layer) so that the backbone
  stays a pure function of its inputs under `nnx.remat`.
  """
  if key is None or rate <= 0.0:
    return x
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))


# PRNG implementations a dropout key may use (jax.random's `impl` names).
PRNG_IMPLS = ('threefry', 'rbg', 'unsafe_rbg')


def rekey(key: jax.Array, impl: str) -> jax.Array:
  """A key of PRNG implementation `impl`, seeded from `key`'s random bits.

  Dropout masks are the bulk of a train step's random numbers: threefry
  computes each 32-bit word with 20 rounds of integer arithmetic, while
  'rbg' and 'unsafe_rbg' draw them with XLA's RngBitGenerator (Philox on
  CPU and GPU, the hardware generator on TPU). Same Bernoulli masks in
  distribution, a different stream. On sharded multi-device runs rbg bits
  are not partitioned (every device draws the whole array) unless XLA is
  told otherwise (TPU: --xla_tpu_spmd_rng_bit_generator_unsafe=1), which
  is why threefry stays the default.
  """
  if impl not in PRNG_IMPLS:
    raise ValueError(f'PRNG impl {impl!r} not in {PRNG_IMPLS}')
  if impl == 'threefry':
    return key
  words = jax.random.key_data(jax.random.key(0, impl=impl)).shape
  bits = jax.random.bits(key, words, jnp.uint32)
  return jax.random.wrap_key_data(bits, impl=impl)


def fold(key: jax.Array | None, *tags: int) -> jax.Array | None:
  """Derives a sub-key per layer/use; passes None through."""
  if key is None:
    return None
  for t in tags:
    key = jax.random.fold_in(key, t)
  return key


@jax.custom_vjp
def gelu(x: jax.Array) -> jax.Array:
  """Exact (erf) GELU, as torch's nn.GELU() default.

  Its gradient is written out (`_gelu_bwd`) so that the backward pass keeps
  only the input: autodiff of `x * erfc(-x / sqrt 2) / 2` keeps the erfc and
  exp intermediates too, three MLP-sized residuals per block instead of one.
  """
  return jax.nn.gelu(x, approximate=False)


def _gelu_fwd(x):
  return gelu(x), x


def _gelu_bwd(x, g):
  xf = x.astype(jnp.float32)
  cdf = 0.5 * jax.lax.erfc(-xf * math.sqrt(0.5))
  pdf = jnp.exp(-0.5 * xf * xf) * (1.0 / math.sqrt(2.0 * math.pi))
  return ((g.astype(jnp.float32) * (cdf + xf * pdf)).astype(g.dtype),)


gelu.defvjp(_gelu_fwd, _gelu_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array,
               eps: float) -> jax.Array:
  """LayerNorm over the last axis in float32; the result in x's dtype.

  The backward pass is written out and keeps x (in its own dtype) and the
  per-row mean and 1/std, where autodiff keeps several float32 copies.
  """
  return _layer_norm_fwd(x, scale, bias, eps)[0]


def _stats(x, eps):
  xf = x.astype(jnp.float32)
  mean = xf.mean(-1, keepdims=True)
  var = jnp.square(xf - mean).mean(-1, keepdims=True)
  return xf, mean, jax.lax.rsqrt(var + eps)


def _layer_norm_fwd(x, scale, bias, eps):
  xf, mean, rstd = _stats(x, eps)
  y = (xf - mean) * rstd
  y = y * scale.astype(jnp.float32) + bias.astype(jnp.float32)
  return y.astype(x.dtype), (x, mean, rstd, scale, bias)


def _layer_norm_bwd(eps, res, g):
  del eps
  x, mean, rstd, scale, bias = res
  xhat = (x.astype(jnp.float32) - mean) * rstd
  gf = g.astype(jnp.float32)
  dxhat = gf * scale.astype(jnp.float32)
  dx = rstd * (dxhat - dxhat.mean(-1, keepdims=True)
               - xhat * (dxhat * xhat).mean(-1, keepdims=True))
  lead = tuple(range(x.ndim - scale.ndim))
  dscale = (gf * xhat).sum(lead).astype(scale.dtype)
  dbias = gf.sum(lead).astype(bias.dtype)
  return dx.astype(x.dtype), dscale, dbias


layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)


class LayerNorm(nnx.Module):
  """LayerNorm computed in float32 whatever the compute dtype.

  Args:
    features: normalised size; `lead` prepends stacked copies (e.g. the
      three binary heads share one module with lead=(3,)).
  """

  def __init__(
    self,
    features: int,
    *,
    eps: float = 1e-5,
    lead: Shape = (),
    lead_names: Names = (),
    param_type: type[nnx.Param] = nnx.Param,
    param_dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    del rngs  # deterministic init; kept for a uniform constructor
    self.eps = eps
    shape, names = (*lead, features), (*lead_names, 'norm')
    key = jax.random.key(0)
    self.scale = make_param(
      param_type, constant(1.0), key, shape, names, param_dtype)
    self.bias = make_param(
      param_type, constant(0.0), key, shape, names, param_dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    return layer_norm(x, self.scale[...], self.bias[...], self.eps)


class Linear(nnx.Module):
  """A head Linear layer; torch-default init under 'released' (weight and
  bias U(+-1/sqrt(fan_in))), He-uniform with zero bias under 'scratch'.

  Kernel layout is (in, out), the transpose of torch's `weight`.
  """

  def __init__(
    self,
    in_features: int,
    out_features: int,
    *,
    names: Names = ('embed', 'mlp'),
    init_scheme: str = 'released',
    param_dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.kernel = make_param(
      nnx.Param, head_kernel_init(in_features, init_scheme), rngs.params(),
      (in_features, out_features), names, param_dtype)
    self.bias = make_param(
      nnx.Param, head_bias_init(in_features, init_scheme), rngs.params(),
      (out_features,), names[1:], param_dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel[...].astype(x.dtype)
    return x @ k + self.bias[...].astype(x.dtype)


def contract(x: jax.Array, w: jax.Array, n_in: int, batch: bool = False):
  """Contracts the last `n_in` dims of x with the first `n_in` of w.

  With `batch=True` both carry a leading group axis (one weight per group),
  which is how two LoRA adapters share one batched pass.
  """
  b = 1 if batch else 0
  xc = tuple(range(x.ndim - n_in, x.ndim))
  wc = tuple(range(b, b + n_in))
  bd = ((0,), (0,)) if batch else ((), ())
  return jax.lax.dot_general(x, w, ((xc, wc), bd))


def prod(shape: Sequence[int]) -> int:
  return int(math.prod(shape))
