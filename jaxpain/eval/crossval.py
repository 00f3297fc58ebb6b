"""UNBC-McMaster 5-fold cross-validation: fine-tune, predict, score, tabulate.

Per fold k (reference.md §C), with honest choices where the released
protocol leaks (§E.10-E.12):

1. Train on the fold's TRAIN subjects with `jaxpain.train.train_and_evaluate`,
   starting from a 3DPain-pretrained run (`init="pretrained"`) or from
   scratch (`init="scratch"`, the baseline). Training references: frames
   with PSPI == 0 of the same (training) subject, the released rule.
2. Model selection never sees the test subjects: `selection="last"` keeps
   the last step; `selection="inner_val"` holds out ~20% of the TRAINING
   subjects (`folds.inner_split`) and keeps the step with the best Pearson r
   on them. (The released code picks the epoch by r on the test fold.)
3. Predict the TEST subjects with N-shot references (post-sigmoid average).
   References: `test_references="sequence_start"` (first frame of each
   sequence, no labels used; default) or `"pspi0"` (the released protocol:
   frames whose ground-truth PSPI is 0, i.e. test labels pick references).
4. Predict the TRAIN frames (no augmentation; references by the training
   rule) to calibrate the F1 thresholds, then score the test fold.

Results: per-fold report folders, `cv_results.json` and `cv_table.md` (mean
± t-based 95% CI half-width over folds), and a pooled scatter plot. A fold
whose `fold_k/result.json` exists is reused, so an interrupted CV resumes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence

import ml_collections
import numpy as np

from jaxpain.eval import metrics, report, unbc_source
from jaxpain.train.config import ConfigError
from tfds_3dpain.unbc_mcmaster import folds as folds_lib
from tfds_3dpain.unbc_mcmaster import unbc

INITS = ("pretrained", "scratch")
SELECTIONS = ("last", "inner_val")


@dataclasses.dataclass
class CVOptions:
  """What the cross-validation does (see the module docstring).

  Attributes:
    unbc_root: the user's UNBC folder (released HDF5 files or archive),
      read directly; or None with `tfds`.
    out_dir: where fold work folders and the tables go.
    init: "pretrained" (needs `pretrained`) or "scratch".
    pretrained: a 3DPain run's workdir (init_from kind 'checkpoint') or a
      PyTorch checkpoint file (kind 'torch').
    pretrained_checkpoint: which checkpoint of a pretrained run: 'best',
      'latest' or a step.
    selection: "last" or "inner_val".
    test_references: "sequence_start" (label-free) or "pspi0" (released).
    train_references: reference rule for training and calibration frames.
    num_references: N-shot inference at test time.
    folds: fold indices to run (None: all).
    inner_fraction: share of training subjects held out for inner_val.
    image_size: folder only: image side fed to the pipeline (the model
      resizes again on the device).
    tfds: read a prepared `unbc_mcmaster/<config>` dataset instead of the
      folder (its fold splits and recorded folds are used).
    data_dir: TFDS data_dir for `tfds`.
  """

  unbc_root: str | None
  out_dir: str
  init: str = "pretrained"
  pretrained: str | None = None
  pretrained_checkpoint: str | int = "best"
  selection: str = "last"
  test_references: str = "sequence_start"
  train_references: str = "pspi0"
  num_references: int = 1
  folds: Sequence[int] | None = None
  inner_fraction: float = 0.2
  image_size: int | None = None
  tfds: str | None = None
  data_dir: str | None = None

  def __post_init__(self):
    if (self.unbc_root is None) == (self.tfds is None):
      raise ConfigError("give exactly one of unbc_root (the UNBC folder) "
                        "and tfds (a prepared unbc_mcmaster dataset)")
    if self.init not in INITS:
      raise ConfigError(f"init must be one of {INITS}, got {self.init!r}")
    if self.init == "pretrained" and not self.pretrained:
      raise ConfigError("init='pretrained' needs `pretrained` (a 3DPain run "
                        "workdir or a PyTorch checkpoint); use init='scratch' "
                        "for the baseline")
    if self.selection not in SELECTIONS:
      raise ConfigError(f"selection must be one of {SELECTIONS}")
    for p in (self.test_references, self.train_references):
      if p not in unbc_source.REFERENCE_POLICIES:
        raise ConfigError(f"reference policy {p!r} not in "
                           f"{unbc_source.REFERENCE_POLICIES}")
    if self.num_references < 1:
      raise ConfigError("num_references must be >= 1")


def fold_config(base: ml_collections.ConfigDict, opts: CVOptions,
                has_val: bool) -> ml_collections.ConfigDict:
  """The trainer config of one fold: UNBC splits, init and selection."""
  c = ml_collections.ConfigDict(base.to_dict())
  c.data.name = "unbc"
  c.data.train_split, c.data.test_split = "train", ""
  c.data.val_split = "val" if has_val else ""
  # UNBC records carry no stored neutral image: draw references from the
  # split's reference set (the policies of unbc_source).
  c.data.neutral_mode = "random_view"
  c.data.eval_neutral_mode = "random_view"
  c.data.eval_num_references = int(opts.num_references)
  if opts.init == "scratch":
    c.init_from.kind, c.init_from.path = "none", None
  else:
    is_run = os.path.isdir(opts.pretrained)
    c.init_from.kind = "checkpoint" if is_run else "torch"
    c.init_from.path = opts.pretrained
    c.init_from.checkpoint = opts.pretrained_checkpoint
  if has_val:
    c.best_metric, c.best_mode = "val/pearson_r", "max"
  else:
    c.eval_every = 0
  return c


class _Folder:
  """Fold sources read straight from the user's UNBC folder."""

  def __init__(self, opts: CVOptions, size: int, data=None):
    self.data = unbc.load(opts.unbc_root) if data is None else data
    self.folds, self.fold_source = folds_lib.for_data(self.data,
                                                      opts.unbc_root)
    self.subject, self.pspi = self.data.subject, self.data.pspi
    self.stats, self.size = self.data.stats, size

  def source(self, fold_ids, policy, examples):
    subjects = [s for i in fold_ids for s in self.folds[i].test_subjects]
    return unbc_source.TableSource(self.data.of_subjects(subjects), policy,
                                   self.size, subjects=examples)


class _Tfds:
  """Fold sources over a prepared `unbc_mcmaster` dataset (ArrayRecord)."""

  def __init__(self, opts: CVOptions):
    import tensorflow_datasets as tfds  # noqa: PLC0415

    import tfds_3dpain  # noqa: F401, PLC0415 (registers unbc_mcmaster)

    self.name, self.data_dir = opts.tfds, opts.data_dir
    meta = tfds.builder(self.name, data_dir=self.data_dir).info.metadata
    self.folds = [folds_lib.Fold(i, tuple(f["train_subjects"]),
                                 tuple(f["test_subjects"]))
                  for i, f in enumerate((meta or {}).get("folds", []))]
    if not self.folds:
      raise ConfigError(f"{self.name} records no folds in its metadata; "
                        "rebuild it with the unbc_mcmaster builder")
    folds_lib.check_folds(self.folds)
    allf = self.source(range(len(self.folds)), "none", None)
    self.subject, self.pspi = allf.identity, allf.pspi
    self.fold_source = f"{self.name} metadata"
    self.stats = {}

  def source(self, fold_ids, policy, examples):
    split = "+".join(f"fold{i}" for i in fold_ids)
    return unbc_source.TfdsSource(self.name, split, policy, self.data_dir,
                                  subjects=examples)


def _subjects_split(fold, frames, opts):
  if opts.selection == "inner_val":
    return folds_lib.inner_split(fold, frames.subject, frames.pspi,
                                 opts.inner_fraction)
  return fold.train_subjects, ()


def run_fold(fold: folds_lib.Fold, frames, base: ml_collections.ConfigDict,
             opts: CVOptions) -> dict:
  """Train, predict and score one fold; writes `fold_k/` and returns its row.

  Args:
    fold: the fold.
    frames: `_Folder` or `_Tfds`: where the fold's sources come from.
    base: the trainer config to start from.
    opts: CV options.
  """
  from jaxpain.train import evaluate as train_eval  # noqa: PLC0415
  from jaxpain.train import trainer  # noqa: PLC0415

  fdir = os.path.join(opts.out_dir, f"fold_{fold.index}")
  done = os.path.join(fdir, "result.json")
  if os.path.exists(done):
    with open(done) as f:
      logging.info("fold %d: reusing %s", fold.index, done)
      return json.load(f)
  inner_train, inner_val = _subjects_split(fold, frames, opts)
  train_ids = [f.index for f in frames.folds if f.index != fold.index]
  srcs = {"train": frames.source(train_ids, opts.train_references,
                                 inner_train)}
  if inner_val:
    srcs["val"] = frames.source(train_ids, opts.test_references, inner_val)
  config = fold_config(base, opts, bool(inner_val))
  workdir = os.path.join(fdir, "train")
  train_result = trainer.train_and_evaluate(config, workdir, sources=srcs)
  # One prediction pass over test AND train subjects (the latter calibrate
  # the F1 thresholds); each subject keeps its own reference rule, and
  # references never cross subjects.
  src = frames.source([fold.index] + train_ids,
                      {opts.test_references: fold.test_subjects,
                       opts.train_references: fold.train_subjects}, None)
  ckpt = "best" if inner_val else "latest"
  pred = train_eval.predict(config, workdir, split="eval", checkpoint=ckpt,
                            given_sources={"eval": src})
  is_test = np.isin(pred["identity"], fold.test_subjects)
  test = {k: np.asarray(pred[k])[is_test] for k in _PRED_KEYS}
  calib = {k: np.asarray(pred[k])[~is_test] for k in _PRED_KEYS}
  row = _score(test, calib)
  test_refs = src.record_index()
  test_refs.example = np.isin(test_refs.identity, fold.test_subjects)
  info = {"fold": fold.index, "train_subjects": list(inner_train),
          "inner_val_subjects": list(inner_val),
          "test_subjects": list(fold.test_subjects), "checkpoint": ckpt,
          "step": int(pred["step"]),
          "references": unbc_source.fallback_counts(test_refs),
          "train_status": train_result.get("status"),
          "init": train_result.get("origin")}
  _fold_report(fdir, row, test, src, info)
  out = {"metrics": row, "info": info,
         "pspi_true": test["pspi_true"].tolist(),
         "pspi_pred": test["pspi"].tolist()}
  report.write_json(out, done)
  return out


_PRED_KEYS = ("pspi", "au", "pspi_true", "au_true", "record", "identity")


def _score(test: dict, calib: dict) -> dict:
  row = metrics.pspi_metrics(test["pspi_true"], test["pspi"],
                             calib["pspi_true"], calib["pspi"])
  row.update(metrics.au_metrics(test["au_true"], test["au"],
                                test["pspi_true"]))
  return row


def _fold_report(fdir, row, test, src, info) -> None:
  """Report folder of a fold; images and keys come from the source."""
  records = test["record"]
  report.write_split_report(
      os.path.join(fdir, "report"),
      {"metrics": row, "pspi_true": test["pspi_true"],
       "pspi_pred": test["pspi"], "au_true": test["au_true"],
       "au_pred": test["au"], "keys": [src.key(r) for r in records],
       "info": info},
      get_image=lambda i: src.image(int(records[i])),
      title=f"UNBC fold {info['fold']}")


def protocol_notes(opts: CVOptions, fold_source: str) -> list[str]:
  """Human-readable protocol lines for the table."""
  sel = ("last step" if opts.selection == "last" else
         f"best Pearson r on an inner validation split of "
         f"{opts.inner_fraction:.0%} of the TRAINING subjects")
  refs = ("first frame of each sequence (no labels used)"
          if opts.test_references == "sequence_start" else
          "test-subject frames with ground-truth PSPI 0 (released protocol; "
          "uses test labels)" if opts.test_references == "pspi0" else "none")
  return [
      f"init: {opts.init}" + (f" from {opts.pretrained}"
                              if opts.init == "pretrained" else ""),
      f"model selection: {sel}; the test fold is never used for selection",
      f"test-time references: {refs}; {opts.num_references}-shot, "
      "post-sigmoid average",
      "F1: threshold tau in linspace(0, 6, 200) chosen on the fold's TRAIN "
      "predictions (no augmentation), applied to the test fold",
      "± is the half-width of the t-based 95% CI over folds "
      "(t_{0.975,k-1} s / sqrt(k)), not the SD",
      f"folds: {fold_source}",
  ]


def run(base: ml_collections.ConfigDict, opts: CVOptions,
        data: unbc.UnbcData | None = None) -> dict:
  """Run the cross-validation; returns per-fold rows and the aggregate.

  The data and folds are read before the output folder is made, so that
  bad input leaves nothing behind.
  """
  size = opts.image_size or int(base.model.image_size)
  frames = _Tfds(opts) if opts.tfds else _Folder(opts, size, data)
  fold_list = frames.folds
  os.makedirs(opts.out_dir, exist_ok=True)
  folds_lib.write_folds(fold_list, os.path.join(opts.out_dir,
                                                unbc.FOLDS_FILE))
  chosen = [f for f in fold_list if opts.folds is None or f.index in opts.folds]
  from tqdm.auto import tqdm  # noqa: PLC0415

  rows = [run_fold(f, frames, base, opts)
          for f in tqdm(chosen, desc="UNBC folds", unit="fold")]
  per_fold = [r["metrics"] for r in rows]
  agg = metrics.aggregate(per_fold)
  notes = protocol_notes(opts, frames.fold_source)
  result = {"options": dataclasses.asdict(opts), "notes": notes,
            "data_stats": frames.stats, "per_fold": per_fold,
            "folds": [r["info"] for r in rows], "aggregate": agg}
  report.write_json(result, os.path.join(opts.out_dir, "cv_results.json"))
  report.write_text(
      report.cv_markdown(per_fold, agg, "UNBC-McMaster cross-validation",
                         notes),
      os.path.join(opts.out_dir, "cv_table.md"))
  pooled_t = np.concatenate([r["pspi_true"] for r in rows])
  pooled_p = np.concatenate([r["pspi_pred"] for r in rows])
  report.scatter_plot(pooled_t, pooled_p,
                      os.path.join(opts.out_dir, "pooled_scatter.png"),
                      title="pooled test predictions (plot only)")
  return result
