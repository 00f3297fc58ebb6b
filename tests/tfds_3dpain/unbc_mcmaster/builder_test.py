"""The `unbc_mcmaster` TFDS builder on fabricated fixtures in both layouts."""

import shutil
import tempfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_3dpain.unbc_mcmaster import Builder, fabricate, folds, unbc


def _prepare(manual_dir, data_dir, config="px32"):
  b = Builder(config=config, data_dir=str(data_dir))
  b.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir)))
  return b


def _check_against_table(data_dir, table, fold_list):
  """Every fold split holds exactly its test subjects' frames and labels."""
  for f in fold_list:
    src = tfds.data_source("unbc_mcmaster/px32", split=f"fold{f.index}",
                           data_dir=str(data_dir))
    want = table.of_subjects(f.test_subjects)
    assert len(src) == len(want)
    by_key = {}
    for i in range(len(src)):
      rec = src[i]
      seq = rec["sequence"].decode()
      key = (int(rec["identity"]), seq, int(rec["frame"]))
      by_key[key] = rec
    for i in range(len(want)):
      rec = by_key[(int(want.subject[i]), str(want.sequence[i]),
                    int(want.frame[i]))]
      np.testing.assert_allclose(rec["au"], want.au[i])
      assert rec["pspi"] == want.pspi[i]
      assert rec["is_neutral"] == (want.pspi[i] == 0)
      assert rec["image"].shape == (32, 32, 3)
      np.testing.assert_array_equal(rec["image"], want.image(i))


def test_archive_layout_builds_folds_tf_free(fab, archive_dir, tmp_path):
  b = _prepare(archive_dir.parent, tmp_path)
  meta = b.info.metadata
  assert meta["layout"] == "archive" and len(meta["folds"]) == 5
  want_folds = folds.make_folds(fab.subject, fab.pspi, 5, seed=0)
  got = [tuple(f["test_subjects"]) for f in meta["folds"]]
  assert got == [f.test_subjects for f in want_folds]
  _check_against_table(tmp_path, fab, want_folds)
  # Split algebra gives the training side of a fold.
  train = tfds.data_source("unbc_mcmaster/px32", split="fold1+fold2+fold3+"
                           "fold4", data_dir=str(tmp_path))
  assert len(train) == len(fab.of_subjects(want_folds[0].train_subjects))
  # Sequence starts are flagged for label-free references: one per sequence.
  starts = sum(int(train[i]["is_sequence_start"]) for i in range(len(train)))
  assert starts == 2 * len(want_folds[0].train_subjects)


def test_hdf5_layout_uses_the_fold_file(fab, hdf5_dir, tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(hdf5_dir, manual)
  custom = folds.make_folds(fab.subject, fab.pspi, 5, seed=7)
  folds.write_folds(custom, str(manual / unbc.FOLDS_FILE))
  b = _prepare(manual, tmp_path / "data")
  assert b.info.metadata["fold_source"].endswith(unbc.FOLDS_FILE)
  _check_against_table(tmp_path / "data", unbc.load(str(manual)), custom)
  # Metadata survives a fresh read-only open of the prepared folder.
  again = tfds.builder("unbc_mcmaster/px32", data_dir=str(tmp_path / "data"))
  assert [tuple(f["test_subjects"]) for f in again.info.metadata["folds"]] \
      == [f.test_subjects for f in custom]


def test_bad_manual_dir_says_what_is_expected(tmp_path):
  (tmp_path / "manual").mkdir()
  (tmp_path / "manual" / "readme.txt").write_text("not UNBC")
  with pytest.raises(unbc.UnbcFormatError, match="neither UNBC layout"):
    _prepare(tmp_path / "manual", tmp_path / "data")


class UnbcBuilderTest(tfds.testing.DatasetBuilderTestCase):
  """TFDS's own builder checks (needs TensorFlow; reads back as tf.data)."""

  DATASET_CLASS = Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["px32"]
  SKIP_CHECKSUMS = True
  SPLITS = {f"fold{i}": 16 for i in range(5)}

  @classmethod
  def setUpClass(cls):
    cls._tmp = tempfile.mkdtemp()
    table = fabricate.make_unbc(n_subjects=10, n_sequences=1, n_frames=8)
    unbc.write_hdf5(table, cls._tmp)
    cls.EXAMPLE_DIR = cls._tmp
    super().setUpClass()

  @classmethod
  def tearDownClass(cls):
    super().tearDownClass()
    shutil.rmtree(cls._tmp, ignore_errors=True)

  def _make_builder(self, config=None):
    return self.dataset_class(data_dir=self.tmp_dir, config=config,
                              version=self.VERSION, file_format="tfrecord")
