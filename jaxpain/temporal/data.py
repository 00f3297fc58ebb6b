"""Simulated recordings on disk, and grain windows over them.

`simulate_splits` runs the procedural simulator (`synth.sequences`) for
disjoint subject ids per split (train / val / test: held-out people) and
writes each split as a folder of .npy arrays plus meta.json. Every subject
depends only on (seed, subject_id), so a split is generated one subject at
a time and any subset can be made anywhere.

Training reads windows: a window of W tokens (W * fs AU frames) with its
stimulus look-back ((history + W) * fs frames; before a recording starts
the first value repeats, as in the streaming sampler), the subject's
expressiveness and emotion. Windows start every `stride` frames. The
training stream is SHARDED BY SUBJECT: process p of P draws windows only
from the subjects i with i % P == p (it need not even hold the others), in
a grain order seeded by (seed, p); each process supplies its rows of the
global batch, and Orbax saves the grain state so a resumed run sees the
same batches.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import grain
import numpy as np
from tqdm.auto import tqdm

from synth import sequences as sq

ARRAYS = ("au", "stimulus", "pspi", "expressiveness", "emotion",
          "subject_id")
SPLITS = ("train", "val", "test")


class DataError(ValueError):
  """A missing or malformed recordings folder."""


# ------------------------------------------------------------ simulate ----


def simulate_split(out_dir: str, seed: int, subject_ids: Sequence[int],
                   programmes: Sequence[str], duration_s: float,
                   progress: bool = False) -> dict:
  """Simulates one split and writes it to `out_dir` (atomically).

  Subject i of the list gets programme `programmes[i % len(programmes)]`.

  Returns:
    The split's meta dict.
  """
  for p in programmes:
    if p not in sq.PROGRAMMES:
      raise DataError(f"unknown programme {p!r}; choose from "
                      f"{sq.PROGRAMMES}")
  ids = [int(i) for i in subject_ids]
  if not ids:
    raise DataError(f"no subjects for {out_dir}")
  cols: dict[str, list] = {k: [] for k in ARRAYS}
  it = tqdm(ids, desc=os.path.basename(out_dir), disable=not progress)
  for n, sid in enumerate(it):
    rec = sq.simulate_subject(seed, sid, programmes[n % len(programmes)],
                              duration_s)
    for k in ARRAYS:
      cols[k].append(getattr(rec, k))
  tmp = f"{out_dir}.tmp{os.getpid()}"
  os.makedirs(tmp, exist_ok=True)
  for k, v in cols.items():
    np.save(os.path.join(tmp, f"{k}.npy"), np.asarray(v))
  meta = {"seed": int(seed), "subject_ids": ids,
          "programmes": list(programmes), "duration_s": float(duration_s),
          "fps": sq.FPS, "aus": list(sq.SEQ_AUS)}
  with open(os.path.join(tmp, "meta.json"), "w") as f:
    json.dump(meta, f, indent=2)
  if os.path.exists(out_dir):
    import shutil

    shutil.rmtree(out_dir)
  os.replace(tmp, out_dir)
  return meta


def simulate_splits(root: str, seed: int, counts: dict[str, int],
                    programmes: Sequence[str], duration_s: float,
                    test_duration_s: float | None = None,
                    progress: bool = False) -> dict:
  """train / val / test folders under `root`, disjoint subject ids."""
  start, metas = 0, {}
  for split in SPLITS:
    n = int(counts.get(split, 0))
    if n <= 0:
      continue
    dur = duration_s if split == "train" else (test_duration_s
                                               or duration_s)
    metas[split] = simulate_split(os.path.join(root, split), seed,
                                  range(start, start + n), programmes, dur,
                                  progress)
    start += n
  return metas


# ------------------------------------------------------------ recordings --


@dataclasses.dataclass
class Recordings:
  """One split in memory (or memory-mapped): N recordings of T frames."""

  au: np.ndarray  # (N, T, K) float32
  stimulus: np.ndarray  # (N, T) drive 0..1
  pspi: np.ndarray  # (N, T)
  expressiveness: np.ndarray  # (N,)
  emotion: np.ndarray  # (N,) int
  subject_id: np.ndarray  # (N,) int
  meta: dict

  @property
  def num(self) -> int:
    return int(self.au.shape[0])

  @property
  def frames(self) -> int:
    return int(self.au.shape[1])

  def subset(self, rows) -> Recordings:
    rows = np.asarray(rows, np.int64)
    return Recordings(*(getattr(self, k)[rows] for k in ARRAYS), self.meta)


def load_split(path: str, mmap: bool = True) -> Recordings:
  """Reads a split folder written by `simulate_split`."""
  if not os.path.isfile(os.path.join(path, "meta.json")):
    raise DataError(f"{path} is not a simulated split (no meta.json); run "
                    "`python -m jaxpain.temporal simulate --out DIR` first")
  with open(os.path.join(path, "meta.json")) as f:
    meta = json.load(f)
  if meta.get("aus") != list(sq.SEQ_AUS):
    raise DataError(f"{path} was simulated with AUs {meta.get('aus')}, "
                    f"this code uses {list(sq.SEQ_AUS)}; simulate again")
  arrays = [np.load(os.path.join(path, f"{k}.npy"),
                    mmap_mode="r" if mmap else None) for k in ARRAYS]
  return Recordings(*arrays, meta)


# ------------------------------------------------------------- windows ----


@dataclasses.dataclass(frozen=True)
class WindowSpec:
  """Shapes of one training window, in frames."""

  window_frames: int  # W * fs
  history_frames: int  # stim_history * fs
  stride: int = 10


def window_starts(num_recordings: int, frames: int, spec: WindowSpec
                  ) -> np.ndarray:
  """(N_windows, 2) int64 rows of (recording, start frame)."""
  last = frames - spec.window_frames
  if last < 0:
    raise DataError(f"recordings of {frames} frames are shorter than one "
                    f"window of {spec.window_frames}; simulate longer ones")
  starts = np.arange(0, last + 1, spec.stride)
  rec = np.repeat(np.arange(num_recordings), len(starts))
  return np.stack([rec, np.tile(starts, num_recordings)], axis=1)


def cut_window(recs: Recordings, row: int, start: int, spec: WindowSpec
               ) -> dict[str, np.ndarray]:
  """One example: au (W*fs, K), stim ((history + W)*fs,), expr, emotion."""
  end = start + spec.window_frames
  lo = start - spec.history_frames
  stim = np.asarray(recs.stimulus[row, max(lo, 0):end], np.float32)
  if lo < 0:
    stim = np.concatenate([np.full(-lo, stim[0], np.float32), stim])
  return {"au": np.asarray(recs.au[row, start:end], np.float32),
          "stim": stim,
          "expr": np.float32(recs.expressiveness[row]),
          "emotion": np.int32(recs.emotion[row])}


class LoadWindows:
  """grain map: a batch of window ids -> a numpy batch (module level, so
  grain worker processes can unpickle it)."""

  def __init__(self, recs: Recordings, index: np.ndarray, spec: WindowSpec):
    self.recs, self.index, self.spec = recs, index, spec

  def __call__(self, ids: np.ndarray) -> dict[str, np.ndarray]:
    rows = [cut_window(self.recs, *self.index[int(i)], self.spec)
            for i in ids]
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def subject_shard(recs: Recordings, process: int, count: int) -> Recordings:
  """The recordings of process `process` of `count` (by subject)."""
  rows = [i for i in range(recs.num) if i % count == process]
  if not rows:
    raise DataError(f"process {process} of {count} has no training subject;"
                    f" simulate at least {count} training subjects")
  return recs.subset(rows)


def train_dataset(recs: Recordings, spec: WindowSpec, local_batch: int,
                  seed: int, process: int = 0, num_processes: int = 1,
                  num_workers: int = 0) -> grain.IterDataset:
  """Infinite shuffled windows of this process's subjects, batched.

  Args:
    recs: the training split (all subjects; this process keeps its shard).
    spec: window shapes.
    local_batch: rows this process feeds per global batch.
    seed: the run's seed; the order is seeded by (seed, process).
    process, num_processes: this process and how many there are.
    num_workers: grain worker processes (0: the main process).
  """
  recs = subject_shard(recs, process, num_processes)
  index = window_starts(recs.num, recs.frames, spec)
  if len(index) < local_batch:
    raise DataError(f"{len(index)} windows, fewer than a batch of "
                    f"{local_batch}; simulate more or longer recordings")
  ds = (grain.MapDataset.range(len(index))
        .seed(int(np.random.SeedSequence([seed, process]).generate_state(1)[0]))
        .shuffle().repeat().batch(local_batch, drop_remainder=True)
        .map(LoadWindows(recs, index, spec)))
  it = ds.to_iter_dataset()
  if num_workers > 0:
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return it


def eval_windows(recs: Recordings, spec: WindowSpec, count: int,
                 seed: int = 0) -> dict[str, np.ndarray]:
  """`count` fixed windows spread over a split (validation loss)."""
  index = window_starts(recs.num, recs.frames, spec)
  rng = np.random.default_rng(seed)
  pick = rng.choice(len(index), size=min(count, len(index)), replace=False)
  return LoadWindows(recs, index, spec)(np.sort(pick))
