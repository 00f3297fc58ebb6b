"""Evaluate any checkpoint on any split and write a report folder.

Checkpoints:
- a jaxpain run folder (what `python -m jaxpain.train` writes): its config
  rebuilds the model and `jaxpain.train.evaluate.predict` restores the
  'best' (or 'latest', or a step) checkpoint;
- a PyTorch file (the released ViTPain `.ckpt`, or one we exported):
  imported with `jaxpain.convert.load_vitpain` into a `ViTPain` built from
  `model_overrides` (default: the released L/16 recipe, official token path).

Datasets:
- `3dpain[/config]`: a prepared TFDS split ('test', 'validation', ...);
- `unbc_mcmaster[/config]`: a prepared TFDS split ('fold0', 'fold1+fold2'),
  or, with `unbc_root`, the user's UNBC folder read directly (split 'all' or
  fold names). `references` picks the test-time neutral references (see
  `unbc_source`); `calibrate_split` adds the train-calibrated F1, with the
  threshold chosen on that split's predictions.

The report folder gets metrics.json / metrics.md, scatter.png, roc.png,
au_errors.png and worst.png (`report.write_split_report`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxpain.data import sources
from jaxpain.eval import metrics, predict, report, unbc_source
from jaxpain.train.config import ConfigError
from tfds_3dpain.unbc_mcmaster import folds as folds_lib
from tfds_3dpain.unbc_mcmaster import unbc

# The released ViTPain (reference.md §B.2): ViT-L/16, released token path.
RELEASED_MODEL = {"variant": "L/16", "image_size": 224,
                  "official_compat": True, "use_neutral": True}


class _Indexed:
  """A source plus a precomputed index (so the trainer skips re-scanning)."""

  def __init__(self, source, index: sources.SplitIndex):
    self.source, self.index = source, index

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, i):
    return self.source[i]

  def record_index(self) -> sources.SplitIndex:
    return self.index


def open_eval_source(dataset: str, split: str, *, data_dir=None,
                     unbc_root=None, references="sequence_start",
                     image_size: int | None = None):
  """The random-access source (with `record_index`) of a dataset split."""
  if dataset.split("/")[0] == "unbc_mcmaster":
    if unbc_root:
      data = unbc.load(unbc_root)
      if split != "all":
        fold_list, _ = folds_lib.for_data(data, unbc_root)
        data = unbc_source.split_table(data, fold_list, split)
      return unbc_source.TableSource(data, references, image_size)
    name = dataset if "/" in dataset else "unbc_mcmaster/px224"
    return unbc_source.TfdsSource(name, split, references, data_dir)
  if dataset.split("/")[0] == "3dpain":
    src = sources.open_source(dataset, split, data_dir)
    return _Indexed(src, sources.split_index(src, dataset, split, data_dir))
  raise ConfigError(f"dataset {dataset!r}: expected '3dpain[/config]' or "
                    "'unbc_mcmaster[/config]'")


def _predict_run(workdir, src, which, shots) -> dict:
  from jaxpain.train import evaluate as train_eval  # noqa: PLC0415

  p = train_eval.predict(None, workdir, split="eval", checkpoint=which,
                         num_references=shots, given_sources={"eval": src})
  return {"pspi": p["pspi"], "au": p["au"], "pspi_true": p["pspi_true"],
          "au_true": p["au_true"], "record": p["record"],
          "checkpoint": f"{workdir} step {p['step']}"}


def load_torch_model(path: str, overrides: Mapping[str, Any] | None = None):
  """A ViTPain with weights imported from a PyTorch checkpoint file."""
  from flax import nnx  # noqa: PLC0415

  from jaxpain import convert  # noqa: PLC0415
  from jaxpain.models import vitpain  # noqa: PLC0415

  cfg = vitpain.ViTPainConfig(**{**RELEASED_MODEL, **dict(overrides or {})})
  model = vitpain.ViTPain(cfg, rngs=nnx.Rngs(0))
  convert.load_vitpain(model, path)
  return model


def _predict_torch(path, src, shots, overrides, batch_size) -> dict:
  model = load_torch_model(path, overrides)
  spec = predict.PredictSpec(
      image_size=predict.model_input_size(model),
      num_references=shots if predict.uses_reference(model) else 0,
      batch_size=batch_size)
  p = predict.predict(model, src, src.record_index(), spec)
  return {"pspi": p["pspi_pred"], "au": p["au_pred"],
          "pspi_true": p["pspi_true"], "au_true": p["au_true"],
          "record": p["record"], "checkpoint": path}


def predict_split(checkpoint: str, src, *, which="best", shots=1,
                  model_overrides=None, batch_size=64) -> dict:
  """Per-example predictions of a run folder or a PyTorch file."""
  if os.path.isdir(checkpoint):
    return _predict_run(checkpoint, src, which, shots)
  _check_checkpoint(checkpoint)
  return _predict_torch(checkpoint, src, shots, model_overrides, batch_size)


def _check_checkpoint(checkpoint: str) -> None:
  if not (os.path.isdir(checkpoint) or os.path.isfile(checkpoint)):
    raise FileNotFoundError(
        f"checkpoint {checkpoint!r} is neither a jaxpain run folder nor a "
        "PyTorch checkpoint file")


def evaluate(checkpoint: str, dataset: str, split: str, out_dir: str, *,
             data_dir=None, unbc_root=None, references="sequence_start",
             shots=1, calibrate_split=None, which="best",
             model_overrides=None, batch_size=64, image_size=None) -> dict:
  """Evaluate `checkpoint` on `dataset`/`split`; write the report folder.

  Returns:
    {"metrics": ..., "files": {name: path}, "info": ...}.
  """
  _check_checkpoint(checkpoint)
  kw = dict(data_dir=data_dir, unbc_root=unbc_root, image_size=image_size)
  src = open_eval_source(dataset, split, references=references, **kw)
  pred = predict_split(checkpoint, src, which=which, shots=shots,
                       model_overrides=model_overrides,
                       batch_size=batch_size)
  calib = None
  if calibrate_split:
    csrc = open_eval_source(dataset, calibrate_split, references="pspi0",
                            **kw)
    calib = predict_split(checkpoint, csrc, which=which, shots=1,
                          model_overrides=model_overrides,
                          batch_size=batch_size)
  m = metrics.pspi_metrics(
      pred["pspi_true"], pred["pspi"],
      None if calib is None else calib["pspi_true"],
      None if calib is None else calib["pspi"])
  m.update(metrics.au_metrics(pred["au_true"], pred["au"], pred["pspi_true"]))
  info = {"checkpoint": pred["checkpoint"], "dataset": dataset,
          "split": split, "shots": shots, "calibrate_split": calibrate_split}
  if isinstance(src, unbc_source.TableSource | unbc_source.TfdsSource):
    info["references"] = references
    info["reference_fallback"] = unbc_source.fallback_counts(
        src.record_index())
  records = np.asarray(pred["record"])
  keys = (list(src.data.key[records]) if hasattr(src, "data")
          else [f"record {r}" for r in records])
  files = report.write_split_report(
      out_dir, {"metrics": m, "pspi_true": pred["pspi_true"],
                "pspi_pred": pred["pspi"], "au_true": pred["au_true"],
                "au_pred": pred["au"], "info": info,
                "keys": keys},
      get_image=lambda i: np.asarray(src[int(records[i])]["image"]),
      title=f"{dataset} {split}")
  return {"metrics": m, "files": files, "info": info}
