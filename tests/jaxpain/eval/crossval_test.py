"""The CV runner and the evaluate command, end to end on fabricated data.

Real trainer, real grain pipeline, real Orbax checkpoints, the trainer
tests' small model with ViTPain's interface (TinyPain) and two training
steps per fold: the point is that every stage runs and the table and
reports are written, not that the model learns (ViTPain itself trains end
to end in tests/jaxpain/train/cli_test.py and the main job's test; its
imported weights are evaluated below). The session's persistent
compilation cache lets later folds and commands reuse the first fold's
compiled steps.
"""

import json

import numpy as np
import pytest
from flax import nnx

from jaxpain import convert
from jaxpain.data import sources
from jaxpain.eval import __main__ as cli
from jaxpain.eval import crossval, evaluate
from jaxpain.models import vitpain
from jaxpain.train import config as config_lib
from tests.jaxpain.train import tiny_model  # noqa: F401  (registers 'tiny')
from tfds_3dpain.unbc_mcmaster import fabricate, folds

REPORT_FILES = ("metrics.json", "metrics.md", "scatter.png", "roc.png",
                "au_errors.png", "worst.png")


def _tiny_config():
  c = config_lib.base_config()
  config_lib.apply_runlocal(c)
  c.model.name = "tiny"  # the runner's wiring is under test, not ViTPain
  c.num_train_steps = 2
  c.checkpoint_every = 2
  c.eval_every = 2
  c.async_checkpoints = False
  c.progress_bar = False
  c.augment.enabled = False  # its compile time is the trainer's to test
  return c


def test_cv_runs_all_folds_and_writes_the_table(fab, archive_dir, tmp_path,
                                                compile_cache):
  out = tmp_path / "cv"
  opts = crossval.CVOptions(unbc_root=str(archive_dir), out_dir=str(out),
                            init="scratch", num_references=2)
  result = crossval.run(_tiny_config(), opts)
  want = folds.make_folds(fab.subject, fab.pspi, 5, seed=0)
  assert [tuple(f["test_subjects"]) for f in result["folds"]] == [
      f.test_subjects for f in want]
  for f, info in zip(want, result["folds"], strict=True):
    assert info["checkpoint"] == "latest" and info["step"] == 2
    assert not set(info["train_subjects"]) & set(f.test_subjects)
    assert info["references"]["frames_using_self_as_reference"] == 0
  agg = result["aggregate"]
  assert agg["pearson"]["k"] == 5 and agg["mae"]["k"] == 5
  for key in ("auroc_1", "f1_1", "f1_macro", "mae_AU4", "au_pspi_mae"):
    assert key in agg
  table = (out / "cv_table.md").read_text()
  assert "| Pearson r |" in table and "mean ± 95% CI" in table
  assert "test-time references: first frame of each sequence" in table
  js = json.loads((out / "cv_results.json").read_text())
  assert len(js["per_fold"]) == 5
  for name in ("pooled_scatter.png", "UNBC_CVFolds_2019-05-16-15-16-36.hdf5",
               "fold_0/report/worst.png", "fold_4/report/metrics.json"):
    assert (out / name).exists(), name
  # Fold results are reused: a second run trains nothing and agrees.
  again = crossval.run(_tiny_config(), opts)
  assert again["per_fold"] == result["per_fold"]
  # The evaluate command scores a run folder (the fold-0 model) on its test
  # fold, with train-calibrated F1, and reproduces the runner's numbers.
  rep = tmp_path / "eval_fold0"
  assert cli.main([
      "--checkpoint", str(out / "fold_0" / "train"), "--which", "latest",
      "--dataset", "unbc_mcmaster", "--unbc_root", str(archive_dir),
      "--split", "fold0", "--calibrate_split", "fold1+fold2+fold3+fold4",
      "--shots", "2", "--out", str(rep)]) == 0
  for name in REPORT_FILES:
    assert (rep / name).exists(), name
  got = json.loads((rep / "metrics.json").read_text())["metrics"]
  want = result["per_fold"][0]
  for key in ("mae", "pearson", "auroc_1"):
    assert got[key] == pytest.approx(want[key], abs=1e-5), key
  assert got["calibrated_1"] == 1.0 and "f1_macro" in got
  # Fine-tuning from a pretrained run (here: the fold-0 model) starts from
  # its parameters.
  pre = crossval.CVOptions(unbc_root=str(archive_dir),
                           out_dir=str(tmp_path / "cv_pre"),
                           init="pretrained",
                           pretrained=str(out / "fold_0" / "train"),
                           pretrained_checkpoint="latest", folds=[3])
  (info,) = crossval.run(_tiny_config(), pre)["folds"]
  assert info["init"].startswith("init_from checkpoint")
  assert "init: pretrained from" in (tmp_path / "cv_pre" /
                                     "cv_table.md").read_text()


def test_inner_validation_selects_on_training_subjects(archive_dir, tmp_path,
                                                       compile_cache):
  opts = crossval.CVOptions(unbc_root=str(archive_dir),
                            out_dir=str(tmp_path / "cv"), init="scratch",
                            selection="inner_val", test_references="pspi0",
                            folds=[1])
  result = crossval.run(_tiny_config(), opts)
  (info,) = result["folds"]
  assert info["checkpoint"] == "best" and info["inner_val_subjects"]
  assert not set(info["inner_val_subjects"]) & set(info["test_subjects"])
  assert not set(info["inner_val_subjects"]) & set(info["train_subjects"])
  assert any("uses test labels" in n for n in result["notes"])


def test_cv_on_a_prepared_tfds_dataset(fab, archive_dir, tmp_path,
                                       compile_cache):
  import tensorflow_datasets as tfds

  from jaxpain.eval import unbc_source
  from tfds_3dpain.unbc_mcmaster import Builder

  Builder(config="px32", data_dir=str(tmp_path / "tfds")).download_and_prepare(
      download_config=tfds.download.DownloadConfig(
          manual_dir=str(archive_dir)))
  want = folds.make_folds(fab.subject, fab.pspi, 5, seed=0)
  src = unbc_source.TfdsSource("unbc_mcmaster/px32", "fold1+fold2",
                               "sequence_start", str(tmp_path / "tfds"),
                               subjects=want[1].test_subjects)
  idx = src.record_index()
  assert idx.example.sum() == len(fab.of_subjects(want[1].test_subjects))
  assert idx.reference.sum() == 2 * 4  # 4 subjects x 2 sequence starts
  opts = crossval.CVOptions(unbc_root=None, tfds="unbc_mcmaster/px32",
                            data_dir=str(tmp_path / "tfds"),
                            out_dir=str(tmp_path / "cv"), init="scratch",
                            folds=[2])
  result = crossval.run(_tiny_config(), opts)
  (info,) = result["folds"]
  assert tuple(info["test_subjects"]) == want[2].test_subjects
  assert result["per_fold"][0]["n"] == len(fab.of_subjects(
      want[2].test_subjects))
  assert (tmp_path / "cv" / "fold_2" / "report" / "worst.png").exists()


class _ThreeDPainLike:
  """3DPain-shaped records (pain + neutral per identity), in memory."""

  def __init__(self, n_ids=4, size=32):
    data = fabricate.make_unbc(n_subjects=n_ids, n_sequences=1, n_frames=4,
                               size=size, seed=1)
    expr = np.where(data.frame == 1, 0, data.frame - 1)
    self.src = sources.ArraySource({
        "image": data.images.array[data.rows], "au": data.au,
        "pspi": data.pspi, "identity": data.subject, "expression": expr,
        "view": np.zeros(len(data), np.int64)})

  def __call__(self, split, data_dir=None):
    return self.src


def test_evaluate_imported_torch_weights_on_3dpain_split(tmp_path,
                                                         compile_cache):
  sources.register_source("3dpain/fake", _ThreeDPainLike())
  cfg = dict(variant="mu/16", image_size=32, cross_attn_heads=2,
             official_compat=True, dtype="float32")
  model = vitpain.ViTPain(vitpain.ViTPainConfig(**cfg), rngs=nnx.Rngs(3))
  path = tmp_path / "vitpain.safetensors"
  convert.write_state_dict(convert.export_vitpain(model), str(path))
  out = evaluate.evaluate(str(path), "3dpain/fake", "test",
                          str(tmp_path / "rep"), shots=2,
                          model_overrides=cfg, batch_size=8)
  for name in REPORT_FILES:
    assert (tmp_path / "rep" / name).exists(), name
  m = out["metrics"]
  assert m["n"] == 12  # pain images only; neutrals serve as references
  assert "f1_1" not in m  # no calibration split given
  # Same weights, same references -> the imported model's predictions.
  direct = evaluate.predict_split(str(path), _ThreeDPainLike().src,
                                  shots=2, model_overrides=cfg, batch_size=8)
  assert m["mae"] == pytest.approx(np.mean(np.abs(
      direct["pspi"] - direct["pspi_true"])), abs=1e-6)


def test_evaluate_bad_inputs(tmp_path):
  with pytest.raises(FileNotFoundError, match="neither a jaxpain run"):
    evaluate.predict_split(str(tmp_path / "missing.ckpt"), None)
  with pytest.raises(ValueError, match="expected '3dpain"):
    evaluate.open_eval_source("mnist", "test")


def test_fold_config_init_and_selection(tmp_path):
  base = _tiny_config()
  run_dir = tmp_path / "pretrain"
  run_dir.mkdir()
  opts = crossval.CVOptions(unbc_root="x", out_dir="y", pretrained=str(run_dir))
  c = crossval.fold_config(base, opts, has_val=False)
  assert (c.init_from.kind, c.init_from.path) == ("checkpoint", str(run_dir))
  assert c.data.test_split == "" and c.data.val_split == ""
  assert c.data.eval_neutral_mode == "random_view"
  torch_opts = crossval.CVOptions(unbc_root="x", out_dir="y",
                                  pretrained=str(tmp_path / "vitpain.ckpt"))
  c = crossval.fold_config(base, torch_opts, has_val=True)
  assert c.init_from.kind == "torch" and c.best_metric == "val/pearson_r"
  with pytest.raises(ValueError, match="needs `pretrained`"):
    crossval.CVOptions(unbc_root="x", out_dir="y")
