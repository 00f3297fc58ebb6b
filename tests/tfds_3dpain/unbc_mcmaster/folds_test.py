"""Folds: subject-disjoint, deterministic, balanced, HDF5 round trip, errors."""

import h5py
import numpy as np
import pytest

from tfds_3dpain.unbc_mcmaster import fabricate, folds


@pytest.fixture(scope="module")
def table():
  # 25 subjects of uneven sizes, like UNBC.
  rng = np.random.default_rng(3)
  sizes = rng.integers(20, 200, 25)
  subject = np.repeat(np.arange(100, 125), sizes)
  pspi = (rng.random(subject.size) < np.repeat(rng.uniform(0, .5, 25), sizes)
          ) * rng.integers(1, 10, subject.size)
  return subject, pspi


def test_folds_are_subject_disjoint_and_cover_everyone(table):
  subject, pspi = table
  fs = folds.make_folds(subject, pspi, k=5, seed=0)
  assert len(fs) == 5
  tested = [s for f in fs for s in f.test_subjects]
  assert sorted(tested) == sorted(set(subject.tolist()))
  for f in fs:
    assert not set(f.train_subjects) & set(f.test_subjects)
    assert set(f.train_subjects) | set(f.test_subjects) == set(subject.tolist())
    assert len(f.test_subjects) == 5
  folds.check_folds(fs, np.unique(subject))


def test_folds_are_deterministic_and_seeded(table):
  subject, pspi = table
  a = folds.make_folds(subject, pspi, seed=0)
  b = folds.make_folds(subject[::-1], pspi[::-1], seed=0)  # order-free
  assert a == b
  assert folds.make_folds(subject, pspi, seed=1) != a


def test_folds_are_balanced_better_than_chance(table):
  subject, pspi = table
  fs = folds.make_folds(subject, pspi)
  sizes = [np.isin(subject, f.test_subjects).sum() for f in fs]
  assert max(sizes) / np.mean(sizes) < 1.1
  rng = np.random.default_rng(0)
  naive = rng.permutation(np.arange(25) % 5)
  naive_sizes = np.bincount(naive[subject - 100], minlength=5)
  assert np.std(sizes) < np.std(naive_sizes)


def test_hdf5_round_trip_in_released_layout(table, tmp_path):
  subject, pspi = table
  fs = folds.make_folds(subject, pspi)
  path = str(tmp_path / "UNBC_CVFolds_test.hdf5")
  folds.write_folds(fs, path)
  with h5py.File(path) as f:
    assert sorted(f) == [f"fold-{i}" for i in range(5)]
    assert sorted(f["fold-0"]) == ["train_subjects", "validation_subjects"]
  assert folds.read_folds(path, np.unique(subject)) == fs


def _write_raw(path, groups):
  with h5py.File(path, "w") as f:
    for name, (tr, va) in groups.items():
      g = f.create_group(name)
      g["train_subjects"] = np.asarray(tr)
      g["validation_subjects"] = np.asarray(va)


def test_overlapping_folds_name_the_subjects(tmp_path):
  p = str(tmp_path / "f.hdf5")
  _write_raw(p, {"fold-0": ([1, 2, 3], [3, 4]), "fold-1": ([3, 4], [1, 2])})
  with pytest.raises(folds.FoldError, match=r"\[3\] are in both"):
    folds.read_folds(p)
  _write_raw(p, {"fold-0": ([3, 4], [1, 2]), "fold-1": ([1, 4], [2, 3])})
  with pytest.raises(folds.FoldError, match="subject 2 is a test subject of "
                     "fold-0 and fold-1"):
    folds.read_folds(p)
  _write_raw(p, {"fold-0": ([3, 4], [1, 2]), "fold-1": ([1, 2], [3, 4])})
  with pytest.raises(folds.FoldError, match=r"\[5\] are never"):
    folds.read_folds(p, all_subjects=[1, 2, 3, 4, 5])


def test_malformed_fold_file(tmp_path):
  p = str(tmp_path / "f.hdf5")
  with h5py.File(p, "w") as f:
    f.create_group("fold-0")["train_subjects"] = np.array([1])
  with pytest.raises(folds.FoldError, match=r"lacks \['validation_subjects'\]"):
    folds.read_folds(p)


def test_inner_split_uses_train_subjects_only():
  data = fabricate.make_unbc(n_subjects=10, n_sequences=1, n_frames=4)
  fs = folds.make_folds(data.subject, data.pspi)
  for f in fs:
    tr, va = folds.inner_split(f, data.subject, data.pspi)
    assert va and not set(va) & set(f.test_subjects)
    assert sorted(tr + va) == sorted(f.train_subjects)
    assert (tr, va) == folds.inner_split(f, data.subject, data.pspi)
