"""Subject-disjoint cross-validation folds for UNBC-McMaster.

The released code reads a lab-internal fold file that was never published
(reference.md §C, §E.13), so we build our own: K folds of whole subjects,
deterministic for a given seed, balanced in frame count and in pain
prevalence (share of frames with PSPI >= 1), because a fold that happens to
hold the few very expressive subjects changes F1 and AUROC far more than its
size suggests. Folds are stored in the released fold-file layout
(`fold-<k>/train_subjects`, `fold-<k>/validation_subjects`) so either code
base can read either's folds.

Naming: the released file calls the held-out subjects of a fold
"validation_subjects"; they are the TEST subjects of that fold. Model
selection must never look at them (see `inner_split`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import h5py
import numpy as np

from synth.cli_errors import UserError
from tfds_3dpain.unbc_mcmaster import unbc

DEFAULT_K = 5
# Random balanced assignments scored per seed: plenty for 25 subjects and
# still instant.
_TRIALS = 4000


class FoldError(UserError):
  """Folds that overlap, miss subjects or are malformed."""


@dataclasses.dataclass(frozen=True)
class Fold:
  """One fold: train subjects and held-out test subjects (sorted ids)."""

  index: int
  train_subjects: tuple[int, ...]
  test_subjects: tuple[int, ...]


def _subject_stats(subject, pspi):
  subs, inv = np.unique(np.asarray(subject), return_inverse=True)
  frames = np.bincount(inv).astype(np.float64)
  pain = np.bincount(inv, weights=(np.asarray(pspi) >= 1)).astype(np.float64)
  return subs, frames, pain


def _cost(assign, frames, pain, k):
  f = np.bincount(assign, weights=frames, minlength=k)
  p = np.bincount(assign, weights=pain, minlength=k)
  rate = np.divide(p, f, out=np.zeros_like(p), where=f > 0)
  size_dev = np.abs(f / f.mean() - 1.0).max()
  rate_dev = np.abs(rate - pain.sum() / frames.sum()).max()
  return size_dev + rate_dev


def make_folds(subject, pspi, k: int = DEFAULT_K, seed: int = 0) -> list[Fold]:
  """K subject-disjoint folds, balanced in frames and pain prevalence.

  Every fold gets floor(S/k) or ceil(S/k) subjects. Among `_TRIALS` random
  such assignments drawn from `seed`, the one with the smallest cost (max
  relative frame-count deviation + max pain-rate deviation) wins, so the
  result depends only on the (subject, PSPI) table and the seed.

  Args:
    subject: (N,) subject id of every frame.
    pspi: (N,) PSPI of every frame.
    k: number of folds.
    seed: changes which balanced assignment is found.

  Returns:
    k `Fold`s covering every subject exactly once as a test subject.
  """
  subs, frames, pain = _subject_stats(subject, pspi)
  if len(subs) < k:
    raise FoldError(f"{len(subs)} subjects cannot fill {k} folds")
  base = np.arange(len(subs)) % k
  rng = np.random.default_rng(seed)
  best, best_cost = None, np.inf
  for _ in range(_TRIALS):
    assign = rng.permutation(base)
    c = _cost(assign, frames, pain, k)
    if c < best_cost - 1e-12:
      best, best_cost = assign, c
  return _folds_from_assignment(subs, best, k)


def _folds_from_assignment(subs, assign, k) -> list[Fold]:
  out = []
  for i in range(k):
    test = tuple(int(s) for s in subs[assign == i])
    train = tuple(int(s) for s in subs[assign != i])
    out.append(Fold(i, train, test))
  return out


def check_folds(folds: Sequence[Fold], all_subjects=None) -> None:
  """Raise `FoldError` naming the subjects if folds are not a clean CV.

  Checks: no subject is both train and test within a fold; no subject is a
  test subject of two folds; with `all_subjects`, every subject is tested
  once and no fold names an unknown subject.
  """
  seen: dict[int, int] = {}
  for f in folds:
    both = sorted(set(f.train_subjects) & set(f.test_subjects))
    if both:
      raise FoldError(
          f"fold-{f.index}: subject(s) {both} are in both train_subjects and "
          "validation_subjects; a subject must be on one side only")
    if not f.test_subjects:
      raise FoldError(f"fold-{f.index} has no test (validation) subjects")
    for s in f.test_subjects:
      if s in seen:
        raise FoldError(
            f"subject {s} is a test subject of fold-{seen[s]} and "
            f"fold-{f.index}; test sets of folds must not overlap")
      seen[s] = f.index
  if all_subjects is not None:
    known = {int(s) for s in all_subjects}
    untested = sorted(known - set(seen))
    unknown = sorted({s for f in folds for s in f.train_subjects + f.test_subjects}
                     - known)
    if untested:
      raise FoldError(f"subject(s) {untested} are never a test subject")
    if unknown:
      raise FoldError(f"folds name subject(s) {unknown} absent from the data")


def write_folds(folds: Sequence[Fold], path: str) -> None:
  """Write folds in the released fold-file layout (atomically)."""
  check_folds(folds)

  def fill(f):
    for fold in folds:
      g = f.create_group(f"fold-{fold.index}")
      g["train_subjects"] = np.asarray(fold.train_subjects, dtype=np.int64)
      g["validation_subjects"] = np.asarray(fold.test_subjects, dtype=np.int64)

  unbc._atomic_h5(path, fill)  # noqa: SLF001 (shared helper)


def read_folds(path: str, all_subjects=None) -> list[Fold]:
  """Read a released-layout fold file and check it (see `check_folds`)."""
  with h5py.File(path, "r") as f:
    names = sorted((n for n in f if n.startswith("fold-")),
                   key=lambda n: int(n.split("-")[1]))
    if not names:
      raise FoldError(f"{path} has no fold-<k> groups; it has {sorted(f)}")
    folds = []
    for n in names:
      missing = [k for k in ("train_subjects", "validation_subjects")
                 if k not in f[n]]
      if missing:
        raise FoldError(f"{path}: group {n} lacks {missing}")
      folds.append(Fold(
          int(n.split("-")[1]),
          tuple(sorted(int(s) for s in f[n]["train_subjects"][()])),
          tuple(sorted(int(s) for s in f[n]["validation_subjects"][()]))))
  check_folds(folds, all_subjects)
  return folds


def for_data(data: unbc.UnbcData, root: str) -> tuple[list[Fold], str]:
  """The folds of a UNBC copy: its fold file if `root` has one, else ours.

  The TFDS builder and the runner both call this, so a prepared dataset and
  a run reading the folder directly always agree on the folds.

  Returns:
    (folds, where they came from: the fold-file path or a description).
  """
  path = unbc.find_hdf5_files(root)["folds"]
  if path:
    return read_folds(path, data.subjects()), path
  return (make_folds(data.subject, data.pspi, DEFAULT_K, seed=0),
          "tfds_3dpain.unbc_mcmaster.folds.make_folds(seed=0)")


def inner_split(fold: Fold, subject, pspi, fraction: float = 0.2,
                seed: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """Split a fold's TRAIN subjects into (inner train, inner validation).

  Model selection (best epoch) may look at the inner validation subjects
  only; the fold's test subjects stay unseen. Subjects are drawn with the
  same balancing as `make_folds` (by frames and pain prevalence).
  """
  mask = np.isin(subject, fold.train_subjects)
  n_val = max(1, int(round(fraction * len(fold.train_subjects))))
  if n_val >= len(fold.train_subjects):
    raise FoldError(f"fold-{fold.index}: too few train subjects to split")
  k = max(2, int(round(len(fold.train_subjects) / n_val)))
  parts = make_folds(np.asarray(subject)[mask], np.asarray(pspi)[mask], k,
                     seed + fold.index)
  val = parts[0].test_subjects
  return tuple(s for s in fold.train_subjects if s not in val), val
