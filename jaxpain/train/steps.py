"""The jitted train and eval steps.

One train step does, on device: derive this step's keys from (seed, step);
resize + augment + normalise the uint8 batch (pain and neutral images with
independent draws); run the frozen teacher on the heatmaps when distilling;
forward/backward the student; clip, AdamW update. The train state is
donated, so parameters and optimizer moments are updated in place; the
frozen base, the teacher and the batch are read-only inputs.

Eval steps donate nothing and return per-example predictions (sharded along
the batch) plus masked loss sums.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxpain import sharding as shd
from jaxpain.data import augment
from jaxpain.models import layers
from jaxpain.train import losses, model_lib
from jaxpain.train.state import Teacher, TrainSetup


def augment_config(config) -> augment.AugmentConfig | None:
  """config.augment as the on-device augmentation's settings (None: off)."""
  if not config.augment.enabled:
    return None
  d = config.augment.to_dict()
  d.pop("enabled")
  return augment.AugmentConfig.from_dict(d)


def model_inputs(config, batch: Mapping[str, jax.Array],
                 key: jax.Array | None, aug: augment.AugmentConfig | None):
  """(images, neutral | None) for the model, from the uint8 batch.

  Teacher mode: the heatmap (geometric augmentation only, no colour).
  Student: the RGB image and, with use_neutral, its reference; pain and
  neutral get independent keys, hence independent augmentations.
  """
  size = config.model.image_size
  keys = (None, None) if key is None else tuple(jax.random.split(key))
  if config.mode == "teacher":
    return augment.prepare(batch["heatmap"], size, keys[0], aug,
                           color=False), None
  if not config.model.use_neutral:
    return augment.prepare(batch["image"], size, keys[0], aug), None
  if key is not None and batch["neutral"].shape == batch["image"].shape:
    # One augmentation call over [pain; neutral]: every image still gets
    # its own draw, and the step compiles the augmentation once, not twice.
    both = jnp.stack([batch["image"], batch["neutral"]])
    both = augment.prepare(both, size, keys[0], aug)
    return both[0], both[1]
  return (augment.prepare(batch["image"], size, keys[0], aug),
          augment.prepare(batch["neutral"], size, keys[1], aug))


def make_train_step(config: ml_collections.ConfigDict, setup: TrainSetup,
                    mesh, teacher: Teacher | None = None) -> Callable:
  """Returns jitted `step(train, consts, teacher_groups, batch)`.

  Returns (new train state, metrics dict of scalars, replicated).
  """
  graphdef, tx = setup.parts.graphdef, setup.tx
  aug = augment_config(config)
  weights = config.loss.to_dict()
  dcfg = config.distill.to_dict()
  seed = config.seed
  lr = setup.schedules

  def teacher_outputs(tgroups, batch):
    tmodel = model_lib.merge(teacher.parts.graphdef, tgroups)
    size = teacher.model_cfg["image_size"]
    x = augment.prepare(batch["heatmap"], size)
    return tmodel(x, None, deterministic=True)

  def step(train, consts, tgroups, batch):
    key = jax.random.fold_in(jax.random.key(seed), train["step"])
    k_aug, k_drop = jax.random.split(key)
    k_drop = layers.rekey(k_drop, config.dropout_prng)
    images, neutral = model_inputs(config, batch, k_aug, aug)
    t_out = teacher_outputs(tgroups, batch) if teacher is not None else None

    def loss_fn(params):
      model = model_lib.merge(graphdef, dict(consts, **params))
      out = model(images, neutral, deterministic=False, key=k_drop)
      loss, metrics = losses.task_loss(out, batch, weights)
      metrics["loss_task"] = loss
      if t_out is not None:
        d_loss, d_metrics = losses.distill_loss(out, t_out, dcfg)
        loss = loss + d_loss
        metrics.update(d_metrics)
      return loss, metrics

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        train["params"])
    updates, opt_state = tx.update(grads, train["opt_state"], train["params"])
    params = optax.apply_updates(train["params"], updates)
    metrics.update(
        loss=loss, grad_norm=optax.global_norm(grads),
        param_norm=optax.global_norm(params),
        update_norm=optax.global_norm(updates),
        lr=lr["head"](train["step"]), lr_lora=lr["lora"](train["step"]))
    new = {"step": train["step"] + 1, "params": params,
           "opt_state": opt_state}
    return new, metrics

  repl = shd.replicated(mesh)
  batch_sh = shd.batch_sharding(mesh, config.batch_axes)
  t_sh = teacher.parts.shardings if teacher is not None else None
  return jax.jit(
      step,
      in_shardings=(setup.train_shardings, setup.const_shardings, t_sh,
                    batch_sh),
      out_shardings=(setup.train_shardings, repl),
      donate_argnums=(0,))


def make_eval_step(config: ml_collections.ConfigDict, setup: TrainSetup,
                   mesh) -> Callable:
  """Returns jitted `eval(params, consts, batch)` -> per-example outputs.

  With N references per example ('neutral' of shape (B, N, H, W, 3)) the
  model runs once per reference and the post-sigmoid PSPI and the AUs are
  averaged (released multi-shot inference).
  """
  graphdef = setup.parts.graphdef
  weights = config.loss.to_dict()

  def run(params, consts, batch):
    model = model_lib.merge(graphdef, dict(consts, **params))
    images, neutral = model_inputs(config, batch, None, None)
    if neutral is not None and neutral.ndim == 5:
      outs = [model(images, neutral[:, i], deterministic=True)
              for i in range(neutral.shape[1])]
      out = {k: jnp.mean(jnp.stack([o[k].astype(jnp.float32)
                                    for o in outs]), 0)
             for k in ("pspi", "au", "binary_logits", "features")}
    else:
      out = model(images, neutral, deterministic=True)
    loss, _ = losses.task_loss(out, batch, weights)
    n = jnp.sum(batch["mask"])
    return {
        "pspi": 16.0 * out["pspi"].astype(jnp.float32),
        "au": out["au"].astype(jnp.float32),
        "loss_sum": loss * n,
        "count": n,
    }

  batch_sh = shd.batch_sharding(mesh, config.batch_axes)
  repl = shd.replicated(mesh)
  out_sh = {"pspi": batch_sh, "au": batch_sh, "loss_sum": repl,
            "count": repl}
  return jax.jit(
      run,
      in_shardings=(setup.train_shardings["params"], setup.const_shardings,
                    batch_sh),
      out_shardings=out_sh)


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
  """Device scalars -> Python floats (one transfer)."""
  return {k: float(v) for k, v in jax.device_get(dict(metrics)).items()}
