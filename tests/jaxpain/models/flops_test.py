"""FLOP and parameter counts against performance.md §3 and XLA's count."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from jaxpain.models import flops, vit, vitpain


@pytest.mark.parametrize('variant,img,pair,step,base', [
  ('B/16', 35.3, 71.7, 147, 85.64),
  ('L/16', 123.6, 249.0, 508, 303.08),
])
def test_matches_performance_doc(variant, img, pair, step, base):
  """Numbers derived independently in performance.md (released path,
  197 tokens) and timm's parameter count of the DINOv3 backbone."""
  s = flops.summary(vitpain.ViTPainConfig(
    variant=variant, image_size=224, official_compat=True))
  assert s['tokens'] == 197
  assert s['backbone_fwd_gf'] == pytest.approx(img, abs=0.06)
  assert s['pair_fwd_gf'] == pytest.approx(pair, abs=0.06)
  assert s['pair_train_gf'] == pytest.approx(step, abs=0.6)
  assert s['base_m'] == pytest.approx(base, abs=0.006)
  dinov3 = flops.summary(vitpain.ViTPainConfig(variant=variant), False)
  assert dinov3['tokens'] == 201
  assert dinov3['pair_train_gf'] > s['pair_train_gf']


def test_train_step_matches_xla_count():
  """XLA's HLO cost analysis of the real pair train step (LoRA + heads
  differentiated, abstract weights, nothing compiled) agrees within 3% per
  pair; XLA also counts elementwise work, so it is never lower. Per pair =
  batch 2 minus batch 1, which leaves out per-step work (LoRA folded into
  the base once per step). The attention's backward pass recomputes
  q k^T (attention.py), which XLA counts and the model FLOPs do not."""
  # Unrolled blocks: XLA's cost analysis counts a loop body once.
  cfg = vitpain.ViTPainConfig(variant='S/16', image_size=224,
                              scan_blocks=False)
  m = nnx.eval_shape(lambda: vitpain.ViTPain(cfg, rngs=nnx.Rngs(0)))
  gd, train, rest = nnx.split(m, vitpain.trainable_filter, ...)

  def loss(train, rest, x):
    out = nnx.merge(gd, train, rest)(x, x)
    return sum(jnp.sum(out[k]) for k in ('pspi', 'au', 'binary_logits'))

  def count(batch):
    x = jax.ShapeDtypeStruct((batch, 224, 224, 3), jnp.float32)
    return jax.jit(jax.grad(loss)).lower(train, rest, x).cost_analysis()[
      'flops']

  got = count(2) - count(1)
  s = flops.summary(cfg)
  want = s['pair_train_gf'] * 1e9
  v = vit.decode_variant(cfg.variant)
  recompute = 2 * v.depth * 2 * s['tokens'] ** 2 * v.width  # 2 images
  assert want <= got <= 1.03 * want + recompute
