"""One table maps PyTorch keys to jaxpain parameters, both directions.

Each `Entry` pairs a torch key with a parameter path, an optional slot in a
stacked parameter (LoRA adapter index, binary-head index, q/k/v part) and
two pure layout functions (transposes and reshapes only), so importing and
exporting use the same table and the round trip is exact by construction.

Key layouts (reference.md §B.2): timm Eva / DINOv3 names; peft wraps
`patch_embed.proj`, `blocks.i.attn.qkv`, `blocks.i.attn.proj` as
`<name>.base_layer.*` + `<name>.lora_{A,B}.default.weight`; the released
ViTPain prefixes towers with `vit_model.base_model.model.` and
`neutral_encoder.base_model.model.`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from jaxpain.models import vit

Path = tuple[str | int, ...]


@dataclasses.dataclass(frozen=True)
class Entry:
  """torch `key` <-> `path`[slot]; `torch_shape` is what the file holds."""

  key: str
  path: Path
  torch_shape: tuple[int, ...]
  to_jax: Callable[[np.ndarray], np.ndarray]
  to_torch: Callable[[np.ndarray], np.ndarray]
  slot: int | None = None


def _linear(in_shape, out_shape):
  """torch (out, in) weight <-> kernel in_shape + out_shape."""
  n_in, n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
  return (
    (n_out, n_in),
    lambda w: w.T.reshape(*in_shape, *out_shape),
    lambda k: k.reshape(n_in, n_out).T,
  )


def _conv(p, c, n_out):
  """torch (out, C, p, p) conv weight <-> (p*p*C, out) patch kernel."""
  return (
    (n_out, c, p, p),
    lambda w: w.transpose(2, 3, 1, 0).reshape(p * p * c, n_out),
    lambda k: k.reshape(p, p, c, n_out).transpose(3, 2, 0, 1),
  )


def _e(key, path, torch_shape, jax_shape, slot=None):
  """Entry whose layouts differ by a reshape only."""
  return Entry(key, path, tuple(torch_shape),
               lambda w: w.reshape(jax_shape),
               lambda k: k.reshape(torch_shape), slot)


def _lin_entries(key, path, in_shape, out_shape, bias: bool):
  shp, fj, ft = _linear(in_shape, out_shape)
  out = [Entry(f'{key}.weight', (*path, 'kernel'), shp, fj, ft)]
  if bias:
    out.append(_e(f'{key}.bias', (*path, 'bias'), (shp[0],), out_shape))
  return out


def _lora_entries(key, path, in_shape, out_shape, r, slot, conv=None):
  """peft lora_A (r, in) / lora_B (out, r); conv: (r,C,p,p) / (out,r,1,1)."""
  if conv is not None:
    p, c = conv
    a_shape, aj, at = _conv(p, c, r)
    n_out = out_shape[0]
    b = Entry(f'{key}.lora_B.default.weight', (*path, 'lora_b'),
              (n_out, r, 1, 1), lambda w: w.reshape(n_out, r).T,
              lambda k: k.T.reshape(n_out, r, 1, 1), slot)
  else:
    a_shape, aj, at = _linear(in_shape, (r,))
    b_shape, bj, bt = _linear((r,), out_shape)
    b = Entry(f'{key}.lora_B.default.weight', (*path, 'lora_b'), b_shape,
              bj, bt, slot)
  a = Entry(f'{key}.lora_A.default.weight', (*path, 'lora_a'), a_shape, aj,
            at, slot)
  return [a, b]


def backbone_entries(
  cfg: vit.ViTConfig, key_prefix: str, path: Path, *, lora_slot=None,
  peft: bool = False,
) -> list[Entry]:
  """Entries of one timm DINOv3 tower.

  Args:
    cfg: backbone config (sizes, registers, qkv bias).
    key_prefix: e.g. '' (timm file) or 'vit_model.base_model.model.'.
    path: parameter path of the `vit.ViT` module.
    lora_slot: adapter index to map LoRA factors to; None = no LoRA keys.
    peft: the tower is peft-wrapped (`base_layer` names).
  """
  v = cfg.size
  d, p, c = v.width, cfg.patch_size, cfg.in_channels
  base = '.base_layer' if peft else ''
  k = lambda s: key_prefix + s
  out = [_e(k('cls_token'), (*path, 'cls_token'), (1, 1, d), (1, d))]
  if cfg.num_registers:
    r = cfg.num_registers
    out.append(_e(k('reg_token'), (*path, 'reg_token'), (1, r, d), (r, d)))
  pe = (*path, 'patch_embed', 'proj')
  shp, fj, ft = _conv(p, c, d)
  out += [Entry(k(f'patch_embed.proj{base}.weight'), (*pe, 'kernel'), shp,
                fj, ft),
          _e(k(f'patch_embed.proj{base}.bias'), (*pe, 'bias'), (d,), (d,))]
  lora = cfg.lora is not None and lora_slot is not None
  if lora:
    out += _lora_entries(k('patch_embed.proj'), pe, None, (d,),
                         cfg.lora.rank, lora_slot, conv=(p, c))
  for i in range(v.depth):
    out += _block_entries(cfg, k(f'blocks.{i}.'), (*path, 'blocks', i),
                          base, lora_slot if lora else None)
  out += _norm_entries(k('norm'), (*path, 'norm'), d)
  return out


def _norm_entries(key, path, d, slot=None):
  shape = (d,)
  return [_e(f'{key}.weight', (*path, 'scale'), shape, shape, slot),
          _e(f'{key}.bias', (*path, 'bias'), shape, shape, slot)]


def _block_entries(cfg, k, path, base, slot):
  """One block, in torch's state_dict order (own params, then children)."""
  v = cfg.size
  d, h = v.width, v.heads
  dh = d // h
  qkv, proj = (*path, 'attn', 'qkv'), (*path, 'attn', 'proj')
  out = [_e(f'{k}gamma_1', (*path, 'gamma_1'), (d,), (d,)),
         _e(f'{k}gamma_2', (*path, 'gamma_2'), (d,), (d,))]
  out += _norm_entries(f'{k}norm1', (*path, 'norm1'), d)
  if cfg.qkv_bias:  # timm `_qkvb`: q_bias, v_bias; the k part stays zero
    out += [_e(f'{k}attn.q_bias', (*qkv, 'bias'), (d,), (h, dh), 0),
            _e(f'{k}attn.v_bias', (*qkv, 'bias'), (d,), (h, dh), 2)]
  out += _lin_entries(f'{k}attn.qkv{base}', qkv, (d,), (3, h, dh), False)
  if slot is not None:
    out += _lora_entries(f'{k}attn.qkv', qkv, (d,), (3, h, dh),
                         cfg.lora.rank, slot)
  out += _lin_entries(f'{k}attn.proj{base}', proj, (h, dh), (d,), True)
  if slot is not None:
    out += _lora_entries(f'{k}attn.proj', proj, (h, dh), (d,),
                         cfg.lora.rank, slot)
  out += _norm_entries(f'{k}norm2', (*path, 'norm2'), d)
  out += _lin_entries(f'{k}mlp.fc1', (*path, 'fc1'), (d,), (v.mlp,), True)
  out += _lin_entries(f'{k}mlp.fc2', (*path, 'fc2'), (v.mlp,), (d,), True)
  return out


def head_entries(cfg) -> list[Entry]:
  """Cross-attention, PSPI, binary and AU heads of the released model.

  `au_queries` is a parameter of the top module, so torch lists it first;
  `vitpain_entries` puts it there.
  """
  d = cfg.width
  h = cfg.cross_attn_heads
  out = []
  if cfg.use_neutral:
    ca = ('cross_attn',)
    shp, fj, ft = _linear((d,), (3, h, d // h))
    out += [
      Entry('neutral_cross_attn.in_proj_weight', (*ca, 'in_kernel'), shp, fj,
            ft),
      _e('neutral_cross_attn.in_proj_bias', (*ca, 'in_bias'), (3 * d,),
         (3, h, d // h)),
    ]
    shp, fj, ft = _linear((h, d // h), (d,))
    out += [
      Entry('neutral_cross_attn.out_proj.weight', (*ca, 'out_kernel'), shp,
            fj, ft),
      _e('neutral_cross_attn.out_proj.bias', (*ca, 'out_bias'), (d,), (d,)),
    ]
    out += _norm_entries('neutral_norm', (*ca, 'norm'), d)
  out += _norm_entries('pspi_head.0', ('pspi_head', 'norm'), d)
  dims = (d, 512, 256, 128, 1)
  for i, idx in enumerate((2, 5, 8, 11)):
    out += _lin_entries(f'pspi_head.{idx}', ('pspi_head', 'linears', i),
                        (dims[i],), (dims[i + 1],), True)
  bh = ('binary_heads',)
  for i in range(3):
    k = f'pspi_binary_heads.{i + 1}.'
    out += _norm_entries(f'{k}0', (*bh, 'norm'), d, slot=i)
    out += [_e(f'{k}2.weight', (*bh, 'kernel'), (1, d), (d,), i),
            _e(f'{k}2.bias', (*bh, 'bias'), (1,), (), i)]
  au = ('au_head',)
  out += _norm_entries('au_shared_features.0', (*au, 'norm'), d)
  out += _lin_entries('au_shared_features.2', (*au, 'fc'), (d,), (512,),
                      True)
  out += _lin_entries('au_head', (*au, 'out'), (512,), (1,), True)
  return out


TOWERS = ('vit_model', 'neutral_encoder')


def vitpain_entries(cfg) -> list[Entry]:
  """All entries of a released-layout ViTPain state dict for `cfg`."""
  towers = TOWERS if cfg.use_neutral else TOWERS[:1]
  peft = cfg.lora_rank > 0
  d = cfg.width
  out = [_e('au_queries', ('au_head', 'queries'), (6, d), (6, d))]
  for t, name in enumerate(towers):
    shared = cfg.shared_base
    path = ('encoder',) if shared or t == 0 else ('neutral_encoder',)
    bcfg = cfg.backbone(len(towers) if shared else 1)
    prefix = f'{name}.base_model.model.' if peft else f'{name}.'
    slot = t if shared else 0
    out += backbone_entries(bcfg, prefix, path, lora_slot=slot, peft=peft)
  return out + head_entries(cfg)
