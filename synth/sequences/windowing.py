"""Training windows from records, and per-minute drift bounds for rollouts.

`windows(record, length, stride)` cuts a record into fixed-length windows
(the sequence model's training examples); `transition_starts` gives
PainDiffusion's placement instead: windows starting every few frames
around each stimulus transition (reference.md §G.4).

`minute_bounds` says what one minute of the simulator looks like: per AU,
the range of the per-minute mean and variance over many simulated subjects
and minutes, widened by a slack. A long model rollout whose minutes leave
these bounds has drifted (means out of range) or frozen (total variance
below the simulator's quietest minute).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from synth.sequences import aus
from synth.sequences import response as response_lib

FRAMES_PER_MINUTE = 60 * aus.FPS


def windows(record: response_lib.SequenceRecord, length: int,
            stride: int | None = None, starts: Sequence[int] | None = None
            ) -> dict[str, np.ndarray]:
  """Fixed-length windows of a record, as a dict of stacked arrays.

  Args:
    record: the simulated sequence.
    length: frames per window.
    stride: frames between window starts (default `length`); ignored when
      `starts` is given.
    starts: explicit start frames (e.g. transition_starts); each must
      leave `length` frames.

  Returns:
    {"au": (N, L, K) float32, "pspi", "stimulus": (N, L) float32,
    "level": (N, L) int8, "expressiveness": (N,) float32, "emotion",
    "subject_id", "start": (N,) int32}; N = 0 when the record is shorter
    than `length`.
  """
  n = record.num_frames
  if not isinstance(length, int | np.integer) or length < 1:
    raise ValueError(f"window length must be a positive int, got {length!r}")
  if starts is None:
    stride = length if stride is None else stride
    if not isinstance(stride, int | np.integer) or stride < 1:
      raise ValueError(f"stride must be a positive int, got {stride!r}")
    starts = np.arange(0, n - length + 1, stride)
  starts = np.asarray(starts, np.int64).reshape(-1)
  if starts.size and (starts.min() < 0 or starts.max() + length > n):
    raise ValueError(f"window starts must lie in [0, {n - length}] for "
                     f"length {length} in a record of {n} frames")
  idx = starts[:, None] + np.arange(length)[None, :]
  count = len(starts)
  return {
      "au": record.au[idx],
      "pspi": record.pspi[idx],
      "stimulus": record.stimulus[idx],
      "level": record.level[idx],
      "expressiveness": np.full(count, record.expressiveness, np.float32),
      "emotion": np.full(count, record.emotion, np.int32),
      "subject_id": np.full(count, record.subject_id, np.int32),
      "start": starts.astype(np.int32),
  }


def transition_starts(record: response_lib.SequenceRecord, length: int,
                      before: int = 50, after: int = 150, every: int = 10
                      ) -> np.ndarray:
  """Window starts every `every` frames from `before` frames before to
  `after` frames after each change of `record.level` (PainDiffusion's
  windowing), limited to starts that leave `length` frames; sorted, unique.
  """
  changes = np.flatnonzero(np.diff(record.level.astype(np.int16))) + 1
  offsets = np.arange(-before, after, every)
  starts = (changes[:, None] + offsets[None, :]).ravel()
  valid = (starts >= 0) & (starts + length <= record.num_frames)
  return np.unique(starts[valid])


def minute_stats(au: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-minute mean and variance of each AU over the full minutes.

  Args:
    au: (T, K) AU intensities at aus.FPS (a partial last minute is
      dropped).

  Returns:
    (mean, var), each (M, K) with M = T // FRAMES_PER_MINUTE.
  """
  au = np.asarray(au, np.float64)
  minutes = au.shape[0] // FRAMES_PER_MINUTE
  if minutes == 0:
    raise ValueError(f"need at least one minute ({FRAMES_PER_MINUTE} "
                     f"frames) of AUs, got {au.shape[0]} frames")
  blocks = au[:minutes * FRAMES_PER_MINUTE].reshape(
      minutes, FRAMES_PER_MINUTE, au.shape[-1])
  return blocks.mean(1), blocks.var(1)


@dataclasses.dataclass(frozen=True)
class MinuteBounds:
  """Ranges one minute of a sequence must fall in (see minute_bounds).

  Attributes:
    mean_lo, mean_hi: (K,) bounds of each AU's per-minute mean.
    var_hi: (K,) upper bound of each AU's per-minute variance.
    total_var_lo: lower bound of the per-minute variance summed over AUs
      (a frozen sequence falls below it).
  """

  mean_lo: np.ndarray
  mean_hi: np.ndarray
  var_hi: np.ndarray
  total_var_lo: float

  def violations(self, au: np.ndarray) -> list[str]:
    """Every broken bound of each full minute of `au`, one line each."""
    mean, var = minute_stats(au)
    out = []
    for m in range(mean.shape[0]):
      for k, name in enumerate(aus.SEQ_AUS):
        if not self.mean_lo[k] <= mean[m, k] <= self.mean_hi[k]:
          out.append(f"minute {m}: {name} mean {mean[m, k]:.3f} outside "
                     f"[{self.mean_lo[k]:.3f}, {self.mean_hi[k]:.3f}]")
        if var[m, k] > self.var_hi[k]:
          out.append(f"minute {m}: {name} variance {var[m, k]:.3f} above "
                     f"{self.var_hi[k]:.3f}")
      if var[m].sum() < self.total_var_lo:
        out.append(f"minute {m}: total variance {var[m].sum():.4f} below "
                   f"{self.total_var_lo:.4f} (frozen)")
    return out


def minute_bounds(seed: int, subject_ids: Iterable[int],
                  programme: str = "biovid", minutes: int = 10,
                  slack: float = 0.5) -> MinuteBounds:
  """Per-minute AU mean/variance bounds from simulated subjects.

  Every full minute of every subject contributes one sample; the bounds are
  the extremes over them, widened by `slack` times their span (means,
  clipped to the AU range), multiplied by 1 + slack (variances) and divided
  by 1 + slack (the total-variance floor).

  Args:
    seed: population seed.
    subject_ids: the subjects to simulate (a few dozen suffice).
    programme: stimulus programme (programmes.PROGRAMMES).
    minutes: minutes simulated per subject.
    slack: relative widening (0: the raw extremes).

  Returns:
    MinuteBounds.
  """
  means, variances = [], []
  for rec in response_lib.simulate_subjects(seed, subject_ids, programme,
                                            60.0 * minutes):
    mean, var = minute_stats(rec.au)
    means.append(mean)
    variances.append(var)
  if not means:
    raise ValueError("minute_bounds needs at least one subject id")
  mean, var = np.concatenate(means), np.concatenate(variances)
  lo, hi = mean.min(0), mean.max(0)
  span = hi - lo
  return MinuteBounds(
      mean_lo=np.maximum(lo - slack * span, 0.0),
      mean_hi=np.minimum(hi + slack * span, aus.AU_MAX),
      var_hi=var.max(0) * (1 + slack),
      total_var_lo=float(var.sum(1).min() / (1 + slack)),
  )
