"""ViTPain in PyTorch on timm's DINOv3 `Eva` + peft LoRA.

Written from reference.md §B.2 for two uses: the JAX parity tests, and the
PyTorch baseline benchmark. Attribute names reproduce the released
checkpoint's key layout (`vit_model.base_model.model.*`,
`neutral_encoder.*`, `pspi_head.{0,2,5,8,11}`, ...), so a state dict of this
module has the same keys as the released Lightning `state_dict`.

Token paths: `official_compat=True` runs the released extraction (patch
embed, CLS only, blocks without RoPE, final norm); otherwise timm's own
`forward_features` (CLS, 4 registers, RoPE), with the registers dropped
before the heads. torch, timm and peft are imported here only.
"""

from __future__ import annotations

import copy
import dataclasses
import functools

import timm
import timm.layers
import torch
import torch.nn.functional as F
from peft import LoraConfig, TaskType, get_peft_model
from timm.models.eva import Eva
from torch import nn

from jaxpain.models import vit as jvit


@dataclasses.dataclass(frozen=True)
class TorchViTPainConfig:
  """Mirror of the JAX `ViTPainConfig` fields that matter in PyTorch."""

  variant: str = 'L/16'
  lora_rank: int = 8
  lora_alpha: float = 16.0
  lora_dropout: float = 0.1
  head_dropout: float = 0.5
  cross_attn_heads: int = 8
  use_neutral: bool = True
  official_compat: bool = True
  num_registers: int = 4
  in_channels: int = 3


def make_dinov3(
  variant: str, num_registers: int = 4, in_chans: int = 3,
  qkv_bias: bool = False,
):
  """A randomly initialised timm DINOv3 `Eva` (no download).

  Uses the kwargs of timm's `vit_*_patch16_dinov3` registrations, so S/B/L
  match them and the test sizes ('mu/16', 'Ti/16') are the same network,
  smaller. `qkv_bias=True` gives the `_qkvb` variant (note: its attention
  calls `F.linear` on `qkv.weight`, bypassing a peft LoRA on qkv).
  """
  v = jvit.decode_variant(variant)
  return Eva(
    img_size=224, patch_size=16, in_chans=in_chans, num_classes=0,
    embed_dim=v.width, depth=v.depth, num_heads=v.heads,
    mlp_ratio=v.mlp / v.width, qkv_bias=qkv_bias, init_values=1e-5,
    rope_type='dinov3', rope_temperature=100, rope_rotate_half=True,
    use_rot_pos_emb=True, use_abs_pos_emb=False,
    num_reg_tokens=num_registers, use_fc_norm=False, dynamic_img_size=True,
    norm_layer=functools.partial(timm.layers.LayerNorm, eps=1e-5))


def add_lora(model: nn.Module, cfg: TorchViTPainConfig) -> nn.Module:
  """peft LoRA on every module named *qkv / *proj (incl. patch_embed.proj)."""
  lcfg = LoraConfig(
    task_type=TaskType.FEATURE_EXTRACTION, r=cfg.lora_rank,
    lora_alpha=cfg.lora_alpha, target_modules=['qkv', 'proj'],
    lora_dropout=cfg.lora_dropout)
  return get_peft_model(model, lcfg)


class TorchViTPain(nn.Module):
  """The released ViTPain architecture (or its DINOv3 token path).

  Args:
    cfg: settings.
    backbone_fn: builds the backbone (default: `make_dinov3(variant)`).
      Both encoders start from copies of it, as in the release, where both
      load the same pretrained file.
  """

  def __init__(self, cfg: TorchViTPainConfig, backbone_fn=None):
    super().__init__()
    self.cfg = cfg
    backbone_fn = backbone_fn or functools.partial(
      make_dinov3, cfg.variant, cfg.num_registers, cfg.in_channels)
    base = backbone_fn()
    self.vit_model = add_lora(copy.deepcopy(base), cfg)
    d = self.vit_model.base_model.model.embed_dim
    p = cfg.head_dropout
    self.neutral_encoder = None
    self.neutral_cross_attn = self.neutral_norm = None
    if cfg.use_neutral:
      self.neutral_encoder = add_lora(base, cfg)
      self.neutral_cross_attn = nn.MultiheadAttention(
        d, cfg.cross_attn_heads, batch_first=True)
      self.neutral_norm = nn.LayerNorm(d)
    self.pspi_head = nn.Sequential(
      nn.LayerNorm(d), nn.Dropout(p), nn.Linear(d, 512), nn.GELU(),
      nn.Dropout(p), nn.Linear(512, 256), nn.GELU(), nn.Dropout(0.6 * p),
      nn.Linear(256, 128), nn.GELU(), nn.Dropout(0.6 * p),
      nn.Linear(128, 1))
    self.pspi_binary_heads = nn.ModuleDict({
      str(t): nn.Sequential(nn.LayerNorm(d), nn.Dropout(p), nn.Linear(d, 1))
      for t in (1, 2, 3)
    })
    self.au_shared_features = nn.Sequential(
      nn.LayerNorm(d), nn.Dropout(0.6 * p), nn.Linear(d, 512), nn.GELU(),
      nn.Dropout(0.6 * p))
    self.au_queries = nn.Parameter(torch.randn(6, d))
    self.au_head = nn.Linear(512, 1)

  def tokens(self, x: torch.Tensor, peft_model) -> torch.Tensor:
    """[CLS, patches] after the final norm, on the configured path."""
    eva = peft_model.base_model.model
    if not self.cfg.official_compat:
      t = eva.forward_features(x)
      return torch.cat([t[:, :1], t[:, eva.num_prefix_tokens:]], dim=1)
    t = eva.patch_embed(x)  # NHWC with dynamic_img_size
    t = t.reshape(t.shape[0], -1, t.shape[-1])
    t = torch.cat([eva.cls_token.expand(t.shape[0], -1, -1), t], dim=1)
    t = eva.pos_drop(t)
    for blk in eva.blocks:
      t = blk(t)  # released quirk: no RoPE argument
    return eva.norm(t)

  def forward(self, images, neutral=None) -> dict[str, torch.Tensor]:
    """images, neutral: (B, C, H, W). Returns the JAX model's output keys."""
    tp = self.tokens(images, self.vit_model)
    if neutral is not None and self.neutral_encoder is not None:
      tn = self.tokens(neutral, self.neutral_encoder)
      att, _ = self.neutral_cross_attn(tp, tn, tn, need_weights=False)
      tp = self.neutral_norm(tp + att)
    cls, patches = tp[:, 0], tp[:, 1:]
    logit = self.pspi_head(cls).squeeze(-1)
    binary = torch.stack(
      [self.pspi_binary_heads[str(t)](cls).squeeze(-1) for t in (1, 2, 3)],
      dim=-1)
    scores = self.au_queries @ patches.transpose(1, 2)
    attn = F.softmax(scores / patches.shape[-1] ** 0.5, dim=-1)
    au = F.relu(self.au_head(self.au_shared_features(attn @ patches)))
    return {
      'pspi': torch.sigmoid(logit), 'pspi_logit': logit,
      'binary_logits': binary, 'au': au.squeeze(-1), 'features': cls,
      'tokens': tp,
    }

  def lora_parameters(self) -> list[nn.Parameter]:
    """Adapter weights of both encoders (the release's lr x0.1 group)."""
    return [p for n, p in self.named_parameters() if 'lora_' in n]

  def head_parameters(self) -> list[nn.Parameter]:
    """Heads, cross-attention and its norm (AU queries excluded, as
    released)."""
    mods = [self.pspi_head, self.pspi_binary_heads, self.au_shared_features,
            self.au_head, self.neutral_cross_attn, self.neutral_norm]
    return [p for m in mods if m is not None for p in m.parameters()]


def load_checkpoint(model: TorchViTPain, path) -> TorchViTPain:
  """Loads a released-layout `.ckpt` / state dict file into `model`.

  Reads through `jaxpain.convert.read_state_dict` (no code from the file is
  executed, Lightning extras are ignored); strict key matching.
  """
  from jaxpain.convert import read_state_dict

  sd = {k: torch.from_numpy(v.copy()) for k, v in
        read_state_dict(path).items()}
  model.load_state_dict(sd, strict=True)
  return model
