"""Parameter counts and analytic FLOPs of ViTPain per variant.

Counting follows performance.md §3: 2 FLOPs per multiply-accumulate;
matmuls plus the attention core (QK^T and PV); LoRA and heads included;
elementwise work ignored. A *pair* is one sample (pain + neutral image).
The LoRA train step on a frozen base costs the forward pass, plus the
activation gradients of every frozen GEMM (1x, none for the patch
embedding, whose input needs no gradient), plus 2x the attention core,
plus 2x the LoRA and head/cross-attention work (activation and weight
gradients).

`python -m jaxpain.models.flops` prints the table in docs/models.md.
"""

from __future__ import annotations

import dataclasses

import jax
from flax import nnx

from jaxpain.models import heads, lora, vit, vitpain

G = 1e9


@dataclasses.dataclass(frozen=True)
class Cost:
  """FLOPs split by how the backward pass treats them."""

  frozen_gemm: float = 0.0  # base GEMMs whose input gradient is needed
  embed_gemm: float = 0.0  # patch embedding base GEMM (no input gradient)
  core: float = 0.0  # attention QK^T and PV
  trained: float = 0.0  # LoRA, cross-attention, heads

  @property
  def forward(self) -> float:
    return self.frozen_gemm + self.embed_gemm + self.core + self.trained

  @property
  def backward(self) -> float:
    return self.frozen_gemm + 2 * self.core + 2 * self.trained

  def __add__(self, o: Cost) -> Cost:
    return Cost(*(a + b for a, b in zip(
      dataclasses.astuple(self), dataclasses.astuple(o), strict=True)))

  def scale(self, k: float) -> Cost:
    return Cost(*(k * a for a in dataclasses.astuple(self)))


def tokens(cfg: vitpain.ViTPainConfig) -> int:
  """Sequence length in the backbone (197 released, 201 DINOv3 at 224)."""
  n = (cfg.image_size // cfg.patch_size) ** 2
  return n + cfg.backbone(1).num_prefix


def backbone(cfg: vitpain.ViTPainConfig) -> Cost:
  """One image through one encoder (with its LoRA)."""
  v = vit.decode_variant(cfg.variant)
  d, m, r = v.width, v.mlp, cfg.lora_rank
  t = tokens(cfg)
  n = (cfg.image_size // cfg.patch_size) ** 2
  pp = cfg.patch_size ** 2 * cfg.in_channels
  gemm = 2 * t * d * (3 * d + d + 2 * m)
  lora_ = 2 * t * r * (d + 3 * d) + 2 * t * r * (d + d) if r else 0
  layer = Cost(frozen_gemm=gemm, core=4 * t * t * d, trained=lora_)
  embed = Cost(embed_gemm=2 * n * pp * d,
               trained=2 * n * r * (pp + d) if r else 0)
  return embed + layer.scale(v.depth)


def heads_cost(cfg: vitpain.ViTPainConfig, with_neutral: bool) -> Cost:
  """Cross-attention (if a reference is given) and all heads, one pair."""
  d = cfg.width
  t = 1 + (cfg.image_size // cfg.patch_size) ** 2
  n = t - 1
  out = 2 * (d * 512 + 512 * 256 + 256 * 128 + 128)  # PSPI MLP
  out += 2 * len(heads.PSPI_THRESHOLDS) * d  # binary heads
  a = len(heads.AU_NAMES)
  out += 4 * a * n * d + 2 * a * (d * 512 + 512)  # AU pooling + MLP
  if with_neutral:
    out += 2 * t * d * d * 4 + 4 * t * t * d  # q, k, v, out; core
  return Cost(trained=out)


def summary(
  cfg: vitpain.ViTPainConfig, params: bool = True,
) -> dict[str, float]:
  """FLOPs (GF) per image / pair and, if `params`, parameter counts (M)."""
  img = backbone(cfg)
  pair = img.scale(2) + heads_cost(cfg, True)
  counts = param_counts(cfg) if params else {}
  return {
    'tokens': tokens(cfg),
    'backbone_fwd_gf': img.forward / G,
    'pair_fwd_gf': pair.forward / G,
    'pair_train_gf': (pair.forward + pair.backward) / G,
    'single_fwd_gf': (img + heads_cost(cfg, False)).forward / G,
    **{f'{k}_m': v / 1e6 for k, v in counts.items()},
  }


def param_counts(cfg: vitpain.ViTPainConfig) -> dict[str, int]:
  """Parameters by role, from an abstract (never materialised) model."""
  m = nnx.eval_shape(lambda: vitpain.ViTPain(cfg, rngs=nnx.Rngs(0)))
  count = lambda f: sum(
    x.size for x in jax.tree.leaves(nnx.state(m, f)))
  return {
    'base': count(vitpain.frozen_filter),
    'lora': count(lora.LoRAParam),
    'heads': count(nnx.All(nnx.Param, nnx.Not(vitpain.frozen_filter),
                           nnx.Not(lora.LoRAParam))),
    'trainable': count(vitpain.trainable_filter),
  }


def table(image_size: int = 224) -> str:
  """Markdown table over S/B/L and both token paths."""
  rows = ['| variant | path | tokens | base M | LoRA M | heads M | '
          'backbone fwd GF/img | pair fwd GF | pair train step GF |',
          '|---|---|---|---|---|---|---|---|---|']
  for var in ('S/16', 'B/16', 'L/16'):
    for compat in (True, False):
      cfg = vitpain.ViTPainConfig(variant=var, image_size=image_size,
                                  official_compat=compat)
      s = summary(cfg)
      rows.append(
        f"| {var} | {'released' if compat else 'DINOv3'} | {s['tokens']} | "
        f"{s['base_m']:.2f} | {s['lora_m']:.2f} | {s['heads_m']:.2f} | "
        f"{s['backbone_fwd_gf']:.1f} | {s['pair_fwd_gf']:.1f} | "
        f"{s['pair_train_gf']:.0f} |")
  return '\n'.join(rows)


if __name__ == '__main__':
  print(table())
