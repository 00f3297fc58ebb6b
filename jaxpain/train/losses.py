"""Losses: the released task loss and the teacher-student distillation terms.

Task loss (reference.md §B.2, mean reductions):

  L_task = w_p * MSE(pspi, PSPI / 16) + w_au * MSE(au, AU)
           + w_bin * (1/3) * sum_{t=1,2,3} BCEWithLogits(logit_t, PSPI >= t)

Distillation (our choice for the unreleased v1/v2 loss, reference.md §E.7):
the frozen heatmap teacher sees the heatmap of the same example; the
student sees the RGB image (and its neutral reference):

  L = L_task
      + w_feat * D(features_student, features_teacher)
      + w_out  * [MSE(pspi_s, pspi_t) + MSE(au_s, au_t) / 16]

with D = 1 - cosine similarity (scale-free: the two towers see different
modalities, so matching directions is safer than matching norms) or MSE.
The AU term is divided by 16 to put AU intensities (0..5) on the scale of
the PSPI fraction (0..1), so neither output dominates.

Every term is averaged over the real rows of the batch (`mask`), computed
in float32 whatever the compute dtype.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax

THRESHOLDS = (1.0, 2.0, 3.0)


def _mean(x: jax.Array, mask: jax.Array | None) -> jax.Array:
  """Mean over the batch axis (then over the rest), counting masked rows."""
  x = x.reshape(x.shape[0], -1).mean(axis=1)
  if mask is None:
    return x.mean()
  return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def task_loss(out: Mapping[str, jax.Array], batch: Mapping[str, jax.Array],
              weights: Mapping[str, float]) -> tuple[jax.Array, dict]:
  """The released loss. Returns (loss, metrics)."""
  mask = batch.get("mask")
  pspi = batch["pspi"].astype(jnp.float32)
  pred = out["pspi"].astype(jnp.float32)
  l_pspi = _mean((pred - pspi / 16.0) ** 2, mask)
  l_au = _mean((out["au"].astype(jnp.float32) - batch["au"]) ** 2, mask)
  targets = jnp.stack([pspi >= t for t in THRESHOLDS], -1).astype(jnp.float32)
  bce = optax.sigmoid_binary_cross_entropy(
      out["binary_logits"].astype(jnp.float32), targets)
  l_bin = _mean(bce, mask)
  loss = (weights["pspi_weight"] * l_pspi + weights["au_weight"] * l_au
          + weights["binary_weight"] * l_bin)
  mae = _mean(jnp.abs(16.0 * pred - pspi), mask)
  return loss, {"loss_pspi": l_pspi, "loss_au": l_au, "loss_binary": l_bin,
                "mae": mae}


def feature_distance(student: jax.Array, teacher: jax.Array, kind: str,
                     mask: jax.Array | None = None) -> jax.Array:
  """Mean cosine distance (1 - cos) or MSE between feature rows."""
  s = student.astype(jnp.float32)
  t = jax.lax.stop_gradient(teacher.astype(jnp.float32))
  if s.shape != t.shape:
    raise ValueError(
        f"student features {s.shape} and teacher features {t.shape} differ; "
        "distillation needs the same width (use the same model.variant)")
  if kind == "cosine":
    cos = jnp.sum(s * t, -1) / (
        jnp.linalg.norm(s, axis=-1) * jnp.linalg.norm(t, axis=-1) + 1e-6)
    return _mean(1.0 - cos, mask)
  if kind == "mse":
    return _mean((s - t) ** 2, mask)
  raise ValueError(f"unknown feature loss {kind!r}")


def distill_loss(student: Mapping[str, jax.Array],
                 teacher: Mapping[str, jax.Array],
                 cfg: Mapping, mask: jax.Array | None = None
                 ) -> tuple[jax.Array, dict]:
  """Feature + output distillation from frozen teacher outputs."""
  l_feat = feature_distance(student["features"], teacher["features"],
                            cfg["feature_loss"], mask)
  t_pspi = jax.lax.stop_gradient(teacher["pspi"].astype(jnp.float32))
  t_au = jax.lax.stop_gradient(teacher["au"].astype(jnp.float32))
  l_out = (_mean((student["pspi"].astype(jnp.float32) - t_pspi) ** 2, mask)
           + _mean((student["au"].astype(jnp.float32) - t_au) ** 2, mask)
           / 16.0)
  loss = cfg["feature_weight"] * l_feat + cfg["output_weight"] * l_out
  return loss, {"distill_feature": l_feat, "distill_output": l_out}
