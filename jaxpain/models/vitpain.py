"""ViTPain in Flax NNX: two DINOv3+LoRA encoders, cross-attention, heads.

The pain image and the optional neutral reference of the same person go
through encoders with *separate* LoRA adapters on the same frozen base. With
`shared_base=True` that base is stored once and both images run in one
batched pass (base GEMMs on 2B rows, each adapter on its half; the rows
interleave pain and neutral, so a sharded batch keeps its pairs on their
device). Pain tokens then attend to neutral tokens (8 heads, residual,
LayerNorm); the post cross-attention CLS feeds the PSPI and binary heads,
the patch tokens the AU query head. Without a reference the raw tokens go
to the heads.

`official_compat=True` reproduces the released implementation (no RoPE, no
registers in the token path, AU queries never trained); the default uses the
proper DINOv3 token path. See docs/models.md.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from jaxpain import sharding as shd
from jaxpain.models import heads, layers, lora, vit
from jaxpain.models.heads import AU_NAMES, PSPI_THRESHOLDS  # noqa: F401
from jaxpain.models.layers import LOGICAL_AXES, logical_rules  # noqa: F401

_DTYPES = ('float32', 'bfloat16', 'float16')


@dataclasses.dataclass(frozen=True)
class ViTPainConfig:
  """Model hyper-parameters (defaults: the released recipe, DINOv3 path).

  Attributes:
    variant: backbone size, a key of `vit.VARIANTS` ('L/16' released).
    image_size: nominal input side (FLOP counts, abstract init).
    patch_size: patch side.
    num_registers: register tokens stored by the backbone.
    lora_rank / lora_alpha / lora_dropout: peft LoRA settings.
    head_dropout: p of the heads (0.6p in the later PSPI and AU layers).
    cross_attn_heads: heads of the neutral cross-attention.
    use_neutral: build the neutral encoder and cross-attention.
    official_compat: released token path (no RoPE, no registers) and
      frozen AU queries.
    shared_base: store the frozen base once for both encoders.
    dtype: compute dtype ('float32' | 'bfloat16').
    param_dtype: storage dtype of parameters.
    attention_impl: None | 'xla' | 'cudnn' (jax.nn.dot_product_attention).
    remat: rematerialise backbone blocks in the backward pass.
    scan_blocks: run the backbone blocks as one `lax.scan` (compiles one
      block; on CPU also avoids XLA re-deriving the residual gradient in
      every layer's fusion); False unrolls them.
    in_channels: image channels (1-channel input is replicated when 3).
    init_scheme: how fresh weights are drawn: 'released' (DINOv3 backbone,
      torch-default heads; use it when loading pretrained weights) or
      'scratch' (variance-preserving, for training without pretrained
      weights); see `layers.INIT_SCHEMES`.
  """

  variant: str = 'S/16'
  image_size: int = 224
  patch_size: int = 16
  num_registers: int = 4
  lora_rank: int = 8
  lora_alpha: float = 16.0
  lora_dropout: float = 0.1
  head_dropout: float = 0.5
  cross_attn_heads: int = 8
  use_neutral: bool = True
  official_compat: bool = False
  shared_base: bool = True
  dtype: str = 'float32'
  param_dtype: str = 'float32'
  attention_impl: str | None = None
  remat: bool = False
  scan_blocks: bool = True
  in_channels: int = 3
  init_scheme: str = 'released'

  def __post_init__(self):
    size = vit.decode_variant(self.variant)
    layers.check_init_scheme(self.init_scheme)
    if self.dtype not in _DTYPES or self.param_dtype not in _DTYPES:
      raise ValueError(f'dtypes must be among {_DTYPES}')
    if self.attention_impl not in (None, 'xla', 'cudnn'):
      raise ValueError(f'attention_impl {self.attention_impl!r} not in '
                       "(None, 'xla', 'cudnn')")
    if size.width % self.cross_attn_heads:
      raise ValueError(f'cross_attn_heads {self.cross_attn_heads} must '
                       f'divide width {size.width}')
    if self.image_size % self.patch_size:
      raise ValueError('image_size must be a multiple of patch_size')
    if self.lora_rank < 0 or not 0 <= self.lora_dropout < 1:
      raise ValueError('lora_rank >= 0 and 0 <= lora_dropout < 1 required')

  @property
  def width(self) -> int:
    return vit.decode_variant(self.variant).width

  def backbone(self, num_adapters: int) -> vit.ViTConfig:
    """The encoder config; the two token paths differ only here."""
    adapters = None
    if self.lora_rank:
      adapters = lora.LoRAConfig(
        self.lora_rank, self.lora_alpha, self.lora_dropout)
    return vit.ViTConfig(
      variant=self.variant, patch_size=self.patch_size,
      in_channels=self.in_channels, num_registers=self.num_registers,
      use_registers=not self.official_compat,
      use_rope=not self.official_compat, lora=adapters,
      num_adapters=num_adapters, dtype=self.dtype,
      param_dtype=self.param_dtype, attention_impl=self.attention_impl,
      remat=self.remat, scan_blocks=self.scan_blocks,
      init_scheme=self.init_scheme)


def teacher_config(cfg: ViTPainConfig, **overrides) -> ViTPainConfig:
  """Config of the heatmap teacher: the same architecture.

  Heatmaps are fed as images: a 3-channel (colour-mapped) heatmap as is, a
  1-channel heatmap (B, H, W, 1) is replicated to 3 channels by the model,
  which keeps the pretrained RGB patch embedding usable. Pass
  `in_channels=1` to store a 1-channel patch embedding instead (the
  importer then sums the pretrained kernel over RGB, the same function).
  """
  return dataclasses.replace(cfg, **overrides)


# Optimizer filters. Freezing is a variable type, not a path pattern.
lora_filter = lora.LoRAParam
frozen_filter = layers.BaseParam
trainable_filter = nnx.All(nnx.Param, nnx.Not(layers.FrozenParam))
head_filter = nnx.All(trainable_filter, nnx.Not(lora.LoRAParam))


class ViTPain(nnx.Module):
  """ViTPain; see the module docstring."""

  def __init__(self, cfg: ViTPainConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    two = cfg.use_neutral
    pd, d = jnp.dtype(cfg.param_dtype), cfg.width
    if cfg.shared_base:
      self.encoder = vit.ViT(cfg.backbone(2 if two else 1), rngs=rngs)
      self.neutral_encoder = nnx.data(None)
    else:
      self.encoder = vit.ViT(cfg.backbone(1), rngs=rngs)
      self.neutral_encoder = nnx.data(
        vit.ViT(cfg.backbone(1), rngs=rngs) if two else None)
    self.cross_attn = nnx.data(None)
    if two:
      self.cross_attn = heads.CrossAttention(
        d, cfg.cross_attn_heads, dtype=jnp.dtype(cfg.dtype), param_dtype=pd,
        impl=cfg.attention_impl, init_scheme=cfg.init_scheme, rngs=rngs)
    p, init = cfg.head_dropout, dict(init_scheme=cfg.init_scheme)
    self.pspi_head = heads.PSPIHead(d, p, param_dtype=pd, rngs=rngs, **init)
    self.binary_heads = heads.BinaryHeads(
      d, p, param_dtype=pd, rngs=rngs, **init)
    self.au_head = heads.AUHead(
      d, p, frozen_queries=cfg.official_compat, param_dtype=pd, rngs=rngs,
      **init)
    self.dropout_rng = rngs.dropout.fork()

  def __call__(
    self,
    images: jax.Array,
    neutral: jax.Array | None = None,
    *,
    deterministic: bool = True,
    key: jax.Array | None = None,
  ) -> dict[str, jax.Array]:
    """Predicts PSPI and AUs.

    Args:
      images: (B, H, W, C) normalised pain images (C=1 is replicated).
      neutral: (B, H, W, C) neutral references of the same people, or None.
      deterministic: disable dropout (LoRA input and heads).
      key: dropout key; defaults to the model's own 'dropout' stream.

    Returns:
      'pspi' (B,) in (0, 1) (PSPI = 16 * pspi), 'pspi_logit' (B,),
      'binary_logits' (B, 3) for PSPI >= 1, 2, 3, 'au' (B, 6) >= 0 in
      AU_NAMES order, 'features' (B, D) CLS after cross-attention (the
      distillation target), 'tokens' (B, 1 + N, D) [CLS', patches'].
    """
    if neutral is not None and not self.cfg.use_neutral:
      raise ValueError('neutral reference given but use_neutral=False')
    if not deterministic and key is None:
      key = self.dropout_rng()
    if deterministic:
      key = None
    tp, tn = self._encode(
      self._channels(images),
      None if neutral is None else self._channels(neutral),
      layers.fold(key, 0))
    if tn is not None:
      tp = self.cross_attn(tp, tn)
    return self._heads(tp.astype(jnp.float32), layers.fold(key, 1))

  def _channels(self, x):
    c = self.cfg.in_channels
    if x.ndim != 4:
      raise ValueError(f'images must be (B, H, W, C), got {x.shape}')
    if x.shape[-1] == 1 and c == 3:
      x = jnp.broadcast_to(x, (*x.shape[:3], 3))
    if x.shape[-1] != c:
      raise ValueError(f'expected {c} channels, got shape {x.shape}')
    return x

  def _encode(self, images, neutral, key):
    """[CLS, patches] tokens of both images (registers dropped)."""
    enc = self.encoder
    if neutral is None:
      return self._strip(enc(images, groups=(0,), key=key)), None
    if images.shape != neutral.shape:
      raise ValueError(f'neutral {neutral.shape} != images {images.shape}')
    if self.neutral_encoder is None:
      # Pair-interleaved rows [p0, n0, p1, n1, ...]: with the batch sharded
      # along its rows every device keeps its own pairs, so the joint pass
      # and the split after it are local reshapes, not the all-to-all and
      # collective-permute a [pain; neutral] concatenation compiles to.
      b = images.shape[0]
      both = jnp.stack([images, neutral], axis=1)
      both = shd.constrain_batch(both.reshape((2 * b,) + images.shape[1:]))
      both = enc(both, groups=(0, 1), key=key)
      both = both.reshape((b, 2) + both.shape[1:])
      tp, tn = shd.constrain_batch(both[:, 0]), shd.constrain_batch(both[:, 1])
    else:
      tp = enc(images, groups=(0,), key=layers.fold(key, 0))
      tn = self.neutral_encoder(neutral, groups=(0,), key=layers.fold(key, 1))
    return self._strip(tp), self._strip(tn)

  def _strip(self, x):
    n = self.encoder.cfg.num_prefix
    return x if n == 1 else jnp.concatenate([x[:, :1], x[:, n:]], axis=1)

  def _heads(self, tokens, key):
    cls, patches = tokens[:, 0], tokens[:, 1:]
    logit = self.pspi_head(cls, layers.fold(key, 0))
    return {
      'pspi': jax.nn.sigmoid(logit),
      'pspi_logit': logit,
      'binary_logits': self.binary_heads(cls, layers.fold(key, 1)),
      'au': self.au_head(patches, layers.fold(key, 2)),
      'features': cls,
      'tokens': tokens,
    }
