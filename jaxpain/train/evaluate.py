"""Evaluation: per-example predictions for a split, and their metrics.

`predict(config, workdir, split)` is the public entry point (used by the
UNBC runner and reports): it rebuilds the model from the run's config,
restores a checkpoint's parameters (not the optimizer), and returns numpy
arrays in example order: predicted and true PSPI and AUs, record index and
identity. Metrics are MAE, RMSE and Pearson r of PSPI (0..16 units) and the
mean AU absolute error.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxpain import sharding as shd
from jaxpain.data import pipeline, sources
from jaxpain.eval import metrics as pain_metrics
from jaxpain.train import checkpoint as ckpt_lib
from jaxpain.train import state as state_lib
from jaxpain.train import steps as steps_lib


@dataclasses.dataclass
class SplitData:
  """An opened split: its random-access source and record index."""

  name: str
  source: Any
  index: sources.SplitIndex


def open_split(config, split: str, given: Mapping[str, Any] | None = None
               ) -> SplitData:
  """Opens `split` from `given` sources (by split name) or config.data."""
  if given is not None and split in given:
    src = given[split]
    return SplitData(split, src, sources.split_index(src))
  src = sources.open_source(config.data.name, split, config.data.data_dir)
  index = sources.split_index(src, config.data.name, split,
                              config.data.data_dir)
  return SplitData(split, src, index)


def eval_spec(config) -> pipeline.InputSpec:
  if config.mode == "teacher":
    return pipeline.InputSpec(fields=("heatmap",), seed=config.seed)
  fields = ("image", "neutral") if config.model.use_neutral else ("image",)
  return pipeline.InputSpec(
      fields=fields, neutral_mode=config.data.eval_neutral_mode,
      num_references=int(config.data.eval_num_references), seed=config.seed,
      image_size=int(config.model.image_size))


def run(eval_step, params, consts, data: SplitData, config, mesh
        ) -> dict[str, np.ndarray]:
  """Predictions for every example of `data`, in example order."""
  batch_sh = shd.batch_sharding(mesh, config.batch_axes)
  ds, n = pipeline.eval_dataset(data.source, data.index, eval_spec(config),
                                config.eval_batch_size, batch_sh,
                                config.data.num_workers)
  keep = ("mask", "record", "identity", "pspi", "au")
  parts: dict[str, list] = {}
  for batch in pipeline.GlobalBatches(ds, batch_sh, config.eval_batch_size):
    out = eval_step(params, consts, batch)
    host = shd.to_host({"pred_pspi": out["pspi"], "pred_au": out["au"],
                        **{k: batch[k] for k in keep}})
    for k, v in host.items():
      parts.setdefault(k, []).append(np.asarray(v))
  cat = {k: np.concatenate(v)[:n] for k, v in parts.items()}
  assert np.all(cat.pop("mask") == 1.0), "padding rows leaked into results"
  return {"pspi": cat["pred_pspi"], "au": cat["pred_au"],
          "pspi_true": cat["pspi"], "au_true": cat["au"],
          "record": cat["record"], "identity": cat["identity"]}


def metrics(pred: Mapping[str, np.ndarray]) -> dict[str, float]:
  """PSPI MAE / RMSE / Pearson r and AU MAE of `run`'s predictions."""
  p, t = pred["pspi"], pred["pspi_true"]
  if not np.all(np.isfinite(p)):
    return {"mae": float("nan"), "rmse": float("nan"),
            "pearson_r": float("nan"), "au_mae": float("nan"),
            "count": float(len(p))}
  return {
      "mae": pain_metrics.mae(t, p),
      "rmse": float(np.sqrt(np.mean((p - t) ** 2))),
      "pearson_r": pain_metrics.pearson_r(t, p),
      "au_mae": float(np.mean(np.abs(pred["au"] - pred["au_true"]))),
      "count": float(len(p)),
  }


def predict(config: ml_collections.ConfigDict | None, workdir: str,
            split: str = "test", checkpoint: str | int = "best",
            num_references: int | None = None,
            given_sources: Mapping[str, Any] | None = None,
            mesh=None) -> dict[str, np.ndarray]:
  """Per-example predictions of a trained run on a split.

  Args:
    config: the run's config; None reads `workdir/config.json`.
    workdir: the run's work folder.
    split: split name (of config.data.name, or a key of given_sources).
    checkpoint: 'best' | 'latest' | step number.
    num_references: override config.data.eval_num_references (multi-shot).
    given_sources: {split: random-access source} instead of TFDS.
    mesh: defaults to the config's mesh over all devices.

  Returns:
    numpy arrays: 'pspi' and 'au' (predicted, PSPI in 0..16), 'pspi_true',
    'au_true', 'record', 'identity'; plus 'metrics' (dict) and 'step'.
  """
  if config is None:
    config = state_lib.read_run_config(workdir)
  config = ml_collections.ConfigDict(config.to_dict())
  if num_references is not None:
    config.data.eval_num_references = int(num_references)
  mesh = mesh or shd.create_mesh(config.mesh.shape, config.mesh.axes)
  shd.check_batch(config.eval_batch_size, mesh, config.batch_axes)
  data = open_split(config, split, given_sources)
  setup = state_lib.create(config, mesh, total_steps=1)
  ck = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                             read_only=True)
  step = ck.resolve(checkpoint)
  if step is None:
    raise ckpt_lib.CheckpointError(
        f"no checkpoint {checkpoint!r} in {ck.directory} "
        f"(steps: {ck.all_steps()})")
  tree = state_lib.checkpoint_tree(setup)
  partial = {"train": {"params": tree["train"]["params"]},
             "frozen": tree["frozen"], "other": tree["other"]}
  restored = ck.restore_partial(step, ckpt_lib.abstract(partial))
  ck.close()
  consts = dict(setup.consts, frozen=restored["frozen"],
                other=restored["other"])
  with shd.mesh_context(mesh, setup.parts.rules):
    eval_step = steps_lib.make_eval_step(config, setup, mesh)
    pred = run(eval_step, restored["train"]["params"], consts, data,
               config, mesh)
  pred["metrics"] = metrics(pred)
  pred["step"] = step
  jax.effects_barrier()
  return pred
