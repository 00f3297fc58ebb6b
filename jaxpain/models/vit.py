"""DINOv3 Vision Transformer backbone in Flax NNX (timm `Eva` numerics).

Pre-norm blocks with LayerScale, fused qkv (no bias for the plain DINOv3
checkpoints), exact-erf GELU MLP, LayerNorm eps 1e-5, a conv patch embedding
written as patchify + GEMM, CLS and register tokens, axial RoPE on patch
tokens and a final norm. Every projection is a `lora.LoRADense` whose base
is frozen (`layers.BaseParam`); LoRA sits on qkv, proj and the patch
embedding, as peft's `target_modules=['qkv', 'proj']` does on timm.

Two token paths (see docs/models.md):
- DINOv3 (default): [CLS, registers, patches] with RoPE, as timm and Meta.
- released ViTPain (`use_rope=False, use_registers=False`): [CLS, patches],
  no position information at all. The register tokens still exist as
  parameters there, because the released checkpoint stores them.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from jaxpain import sharding
from jaxpain.models import attention, layers, lora, rope


@dataclasses.dataclass(frozen=True)
class Variant:
  """Backbone size: width D, depth, heads, MLP hidden size."""

  width: int
  depth: int
  heads: int
  mlp: int


# 'mu' and 'Ti' are test sizes (not pretrained); S/B/L are timm's
# vit_{small,base,large}_patch16_dinov3.
VARIANTS: dict[str, Variant] = {
  'mu/16': Variant(32, 1, 2, 64),
  'Ti/16': Variant(64, 2, 2, 128),
  'S/16': Variant(384, 12, 6, 1536),
  'B/16': Variant(768, 12, 12, 3072),
  'L/16': Variant(1024, 24, 16, 4096),
  # ViT-g (Zhai et al. 2022, "Scaling Vision Transformers"): sizing only
  # (TPU compile table); no DINOv3 weights exist at this size.
  'g/14': Variant(1408, 40, 16, 6144),
}

TIMM_NAMES = {
  'S/16': 'vit_small_patch16_dinov3',
  'B/16': 'vit_base_patch16_dinov3',
  'L/16': 'vit_large_patch16_dinov3',
}


def decode_variant(name: str) -> Variant:
  """Looks a variant up by name, e.g. 'L/16'."""
  if name not in VARIANTS:
    raise ValueError(f'unknown variant {name!r}; known: {sorted(VARIANTS)}')
  return VARIANTS[name]


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """Backbone settings (ViTPainConfig derives one per encoder).

  Attributes:
    variant: key of VARIANTS.
    patch_size: square patch side.
    in_channels: image channels.
    num_registers: register tokens stored (DINOv3: 4).
    use_registers: put the registers in the token sequence.
    use_rope: rotate q/k of patch tokens (DINOv3 RoPE).
    rope_temperature: RoPE base (DINOv3: 100).
    qkv_bias: fused qkv bias (the `_qkvb` checkpoints; k part stays 0).
    layerscale_init: LayerScale init when not loading weights; None takes
      the scheme's (1e-5 'released', as DINOv3; 1.0 'scratch').
    init_scheme: how fresh weights are drawn, 'released' (DINOv3) or
      'scratch' (variance-preserving); see `layers.INIT_SCHEMES`.
    lora: adapter settings, None for none.
    num_adapters: stacked adapter sets (2: pain + neutral on one base).
    dtype: compute dtype; norms, softmax and RoPE run in float32.
    param_dtype: storage dtype.
    attention_impl: None runs `attention.attention` in head-major layout
      (written-out backward pass); 'xla' or 'cudnn' run
      `jax.nn.dot_product_attention` with that implementation.
    remat: rematerialise each block in the backward pass.
    scan_blocks: run the blocks as one `lax.scan` (see `ViT._scan`); False
      unrolls them in Python.
  """

  variant: str = 'S/16'
  patch_size: int = 16
  in_channels: int = 3
  num_registers: int = 4
  use_registers: bool = True
  use_rope: bool = True
  rope_temperature: float = 100.0
  qkv_bias: bool = False
  layerscale_init: float | None = None
  init_scheme: str = 'released'
  lora: lora.LoRAConfig | None = None
  num_adapters: int = 1
  dtype: str = 'float32'
  param_dtype: str = 'float32'
  attention_impl: str | None = None
  remat: bool = False
  scan_blocks: bool = True

  @property
  def size(self) -> Variant:
    return decode_variant(self.variant)

  @property
  def layerscale(self) -> float:
    if self.layerscale_init is not None:
      return self.layerscale_init
    return 1.0 if self.init_scheme == 'scratch' else 1e-5

  def kernel_init(self, fan_in: int):
    """Init of the backbone's transformer kernels under the scheme."""
    if layers.check_init_scheme(self.init_scheme) == 'scratch':
      return layers.fan_in_normal(fan_in)
    return layers.trunc_normal(0.02)

  @property
  def num_prefix(self) -> int:
    """Prefix tokens in the sequence: CLS (+ registers)."""
    return 1 + (self.num_registers if self.use_registers else 0)


def _dense_kw(cfg: ViTConfig, rngs, adapters: bool):
  return dict(
    lora=cfg.lora if adapters else None, num_adapters=cfg.num_adapters,
    dtype=jnp.dtype(cfg.dtype), param_dtype=jnp.dtype(cfg.param_dtype),
    rngs=rngs)


class PatchEmbed(nnx.Module):
  """Conv k=s=patch as patchify + GEMM; kernel rows ordered (ph, pw, c)."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    p, c, d = cfg.patch_size, cfg.in_channels, cfg.size.width
    self.patch_size = p
    fan_in = p * p * c
    self.proj = lora.LoRADense(
      (fan_in,), (d,), in_names=('patch',), out_names=('embed',),
      use_bias=True, kernel_init=(
        layers.fan_in_normal(fan_in) if cfg.init_scheme == 'scratch'
        else layers.torch_linear_init(fan_in)),
      **_dense_kw(cfg, rngs, adapters=True))

  def __call__(self, x, *, groups, key):
    b, h, w, c = x.shape
    p = self.patch_size
    if h % p or w % p:
      raise ValueError(f'image {h}x{w} is not a multiple of patch size {p}')
    x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, (h // p) * (w // p), p * p * c)
    return self.proj(x, groups=groups, key=key), (h // p, w // p)


class Attention(nnx.Module):
  """Multi-head self-attention with fused qkv and optional RoPE."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    v = cfg.size
    dh = v.width // v.heads
    self.impl = cfg.attention_impl
    kw = _dense_kw(cfg, rngs, adapters=True)
    self.qkv = lora.LoRADense(
      (v.width,), (3, v.heads, dh), in_names=('embed',),
      out_names=('qkv', 'heads', 'kv'), use_bias=cfg.qkv_bias,
      kernel_init=cfg.kernel_init(v.width), **kw)
    self.proj = lora.LoRADense(
      (v.heads, dh), (v.width,), in_names=('heads', 'kv'),
      out_names=('embed',), use_bias=True,
      kernel_init=cfg.kernel_init(v.width), **kw)

  def __call__(self, x, *, rope_tab, prefix, groups, key):
    qkv = self.qkv(x, groups=groups, key=layers.fold(key, 0))
    if self.impl is None:
      o = self._head_major(qkv, rope_tab, prefix)
    else:
      q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
      if rope_tab is not None:
        q = rope.apply(q, *rope_tab, prefix)
        k = rope.apply(k, *rope_tab, prefix)
      o = jax.nn.dot_product_attention(q, k, v, implementation=self.impl)
    return self.proj(o, groups=groups, key=layers.fold(key, 1))

  def _head_major(self, qkv, rope_tab, prefix):
    """`attention.attention` on (B, heads, N, Dh): one transpose in (qkv
    -> q, k, v) and one out (-> B, N, heads, Dh), as PyTorch's timm does."""
    q, k, v = qkv.transpose(2, 0, 3, 1, 4)
    if rope_tab is not None:
      q = rope.apply(q, *rope_tab, prefix, token_axis=2)
      k = rope.apply(k, *rope_tab, prefix, token_axis=2)
    return attention.attention(q, k, v).transpose(0, 2, 1, 3)


class Block(nnx.Module):
  """Pre-norm block: x + g1 * attn(n1(x)); x + g2 * mlp(n2(x))."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    v = cfg.size
    pd = jnp.dtype(cfg.param_dtype)
    norm = dict(param_type=layers.BaseParam, param_dtype=pd, rngs=rngs)
    self.norm1 = layers.LayerNorm(v.width, **norm)
    self.attn = Attention(cfg, rngs=rngs)
    ls = layers.constant(cfg.layerscale)
    self.gamma_1 = layers.make_param(
      layers.BaseParam, ls, rngs.params(), (v.width,), ('embed',), pd)
    self.norm2 = layers.LayerNorm(v.width, **norm)
    kw = _dense_kw(cfg, rngs, adapters=False)
    self.fc1 = lora.LoRADense(
      (v.width,), (v.mlp,), in_names=('embed',), out_names=('mlp',),
      use_bias=True, kernel_init=cfg.kernel_init(v.width), **kw)
    self.fc2 = lora.LoRADense(
      (v.mlp,), (v.width,), in_names=('mlp',), out_names=('embed',),
      use_bias=True, kernel_init=cfg.kernel_init(v.mlp), **kw)
    self.gamma_2 = layers.make_param(
      layers.BaseParam, ls, rngs.params(), (v.width,), ('embed',), pd)

  def __call__(self, x, rope_tab, key, *, prefix, groups):
    a = self.attn(
      self.norm1(x), rope_tab=rope_tab, prefix=prefix, groups=groups,
      key=key)
    x = x + self.gamma_1[...].astype(x.dtype) * a
    h = layers.gelu(self.fc1(self.norm2(x)))
    x = x + self.gamma_2[...].astype(x.dtype) * self.fc2(h)
    return x


class ViT(nnx.Module):
  """The DINOv3 encoder: images -> normalised tokens."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    v, pd = cfg.size, jnp.dtype(cfg.param_dtype)
    if v.width % v.heads:
      raise ValueError(f'width {v.width} not divisible by {v.heads} heads')
    self.patch_embed = PatchEmbed(cfg, rngs=rngs)
    tok = layers.trunc_normal(0.02)
    self.cls_token = layers.make_param(
      layers.BaseParam, tok, rngs.params(), (1, v.width), (None, 'embed'), pd)
    self.reg_token = nnx.data(None)
    if cfg.num_registers:
      self.reg_token = layers.make_param(
        layers.BaseParam, tok, rngs.params(), (cfg.num_registers, v.width),
        (None, 'embed'), pd)
    self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(v.depth)])
    self.norm = layers.LayerNorm(
      v.width, param_type=layers.BaseParam, param_dtype=pd, rngs=rngs)

  def __call__(
    self,
    images: jax.Array,
    *,
    groups: tuple[int, ...] = (0,),
    key: jax.Array | None = None,
  ) -> jax.Array:
    """Encodes images.

    Args:
      images: (B, H, W, C), already normalised.
      groups: adapter index per batch group (static); groups interleave:
        row r uses groups[r % len(groups)] (lora._grouped).
      key: dropout key for the LoRA inputs; None = deterministic.

    Returns:
      (B, num_prefix + H/p * W/p, D) tokens after the final norm, in the
      compute dtype: [CLS, registers (DINOv3 path), patches].
    """
    cfg = self.cfg
    x, (gh, gw) = self.patch_embed(
      images, groups=groups, key=layers.fold(key, 0))
    x = jnp.concatenate([self._prefix(x), x], axis=1)
    rope_tab = None
    if cfg.use_rope:
      dh = cfg.size.width // cfg.size.heads
      rope_tab = rope.sincos(gh, gw, dh, cfg.rope_temperature)
    step = self._block_fn(groups, rope_tab)
    keys = [layers.fold(key, 1, i) for i in range(len(self.blocks))]
    if cfg.scan_blocks and len(self.blocks) > 1:
      x = self._scan(step, x, keys)
    else:
      for block, k in zip(self.blocks, keys, strict=True):
        x = step(block, x, k)
    return self.norm(x)

  def _scan(self, step, x, keys):
    """The blocks as one `lax.scan` over their parameters, stacked per call.

    Parameters stay stored per block (checkpoints and weight import see
    `blocks.<i>`); the stack is a cheap copy next to a block's work. What it
    buys: the loop body compiles once, and XLA cannot fuse across a loop
    boundary, so the backward pass materialises each block's cotangent
    instead of re-deriving it inside later fusions (on CPU, XLA otherwise
    duplicated the residual-stream gradient into every layer's fusions,
    O(depth^2) work: 10.0 s -> see docs/benchmarks.md for the S/16 step).
    """
    graphdef, *_ = nnx.split(self.blocks[0])
    states = [nnx.split(b)[1] for b in self.blocks]
    stacked = jax.tree.map(lambda *v: jnp.stack(v), *states)
    ks = None if keys[0] is None else jnp.stack(keys)

    def body(x, per_layer):
      state, k = per_layer
      return step(nnx.merge(graphdef, state), x, k), None

    x, _ = jax.lax.scan(body, x, (stacked, ks))
    return x

  def _prefix(self, x):
    b, dt = x.shape[0], x.dtype
    parts = [self.cls_token[...]]
    if self.cfg.use_registers and self.reg_token is not None:
      parts.append(self.reg_token[...])
    pre = jnp.concatenate(parts, axis=0).astype(dt)
    return jnp.broadcast_to(pre[None], (b, *pre.shape))

  def _block_fn(self, groups, rope_tab):
    """One block application; RoPE tables are trace-time constants."""
    prefix = self.cfg.num_prefix

    def step(block, x, key):
      # Block boundaries keep the batch layout (sharding.constrain_batch).
      x = block(sharding.constrain_batch(x), rope_tab, key, prefix=prefix,
                groups=groups)
      return sharding.constrain_batch(x)

    return nnx.remat(step) if self.cfg.remat else step
