"""grain input pipeline: records -> global sharded `jax.Array` batches.

The host only reads, decodes and pairs (`jaxpain.data.loading.LoadRows`);
resizing, augmentation and normalisation run on the device inside the
jitted step (`jaxpain.data.augment`).

Batches are built from POSITIONS, not records: a seeded, per-epoch shuffled,
repeated stream of example positions is cut into global batches of
`global_batch` positions (cheap integers, computed per batch), each process
keeps the rows its devices hold (`sharding.process_rows`, a contiguous
block), and only then loads those records. So global batch k holds the
same examples in the same order for any number of processes and any mesh:
one process x 8 devices and two processes x 4 devices see identical data,
and per-example randomness (the random neutral view) is keyed by the
global stream position.
grain's own `[process_index::process_count]` interleaves rows across
processes, which would break that equivalence.

The grain iterator's state (saved with every checkpoint) is the number of
global batches consumed, so resumed runs continue with exactly the next
batch.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import grain
import jax
import numpy as np

from jaxpain import sharding as shd
from jaxpain.data import sources
from jaxpain.data.loading import LoadRows

NEUTRAL_MODES = ("same_view", "random_view")
# Threads loading batches in each loading process: one overlaps loading
# with the step; more cost more CPU per pair (measured).
READ_THREADS = 1
ENDLESS = 2**62  # batches in a training stream


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """What each batch holds.

  Attributes:
    fields: the image fields to load: 'image', 'neutral', 'heatmap'.
    neutral_mode: 'same_view' (the record's own neutral_image, default) or
      'random_view' (a random reference image of the same identity).
    num_references: N > 1 gives 'neutral' of shape (N, H, W, 3), N random
      references of the identity (drawn with replacement if it has fewer),
      for multi-shot evaluation.
    seed: seeds the shuffle and the reference draws.
    image_size: the side the model reads. JPEGs stored at twice that or
      more are decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (still
      >= image_size; the device resizes the rest). None: stored size.
    neutral_cache_mb: decoded neutral images kept per loading process (the
      main one or each grain worker), up to this many MiB; 0 disables.
      Neutral faces repeat (one per identity and view), so each is read
      and decoded once while it fits.
  """

  fields: tuple[str, ...] = ("image", "neutral")
  neutral_mode: str = "same_view"
  num_references: int = 1
  seed: int = 0
  image_size: int | None = None
  neutral_cache_mb: int = 512

  def __post_init__(self):
    if self.neutral_mode not in NEUTRAL_MODES:
      raise ValueError(
          f"neutral_mode {self.neutral_mode!r} not in {NEUTRAL_MODES}")
    if self.num_references < 1:
      raise ValueError(f"num_references must be >= 1: {self.num_references}")
    if self.neutral_cache_mb < 0:
      raise ValueError(
          f"neutral_cache_mb must be >= 0: {self.neutral_cache_mb}")


class _BatchPositions:
  """grain map: global batch number -> this process's example positions.

  The stream of positions is a concatenation of epochs, each a seeded
  permutation of range(n) (numpy's, one per epoch, computed once per
  process); batch b holds stream entries [b * B, (b + 1) * B), of which
  this process keeps rows [start, stop). Without a seed the stream is
  range(padded) (evaluation). One call per batch: grain's per-element
  shuffle costs about as much per example as decoding a JPEG (measured).
  """

  def __init__(self, n: int, global_batch: int, rows: tuple[int, int],
               seed: int | None):
    self.n, self.global_batch, self.rows, self.seed = n, global_batch, rows, seed
    self._perms: dict[int, np.ndarray] = {}

  def _perm(self, epoch: int) -> np.ndarray:
    if epoch not in self._perms:
      if len(self._perms) > 2:
        self._perms.pop(min(self._perms))
      rng = np.random.default_rng([self.seed, 11, epoch])
      self._perms[epoch] = rng.permutation(self.n)
    return self._perms[epoch]

  def __call__(self, batch_number: int) -> np.ndarray:
    stream = batch_number * self.global_batch + np.arange(*self.rows)
    if self.seed is None:
      return stream
    epoch, pos = np.divmod(stream, self.n)
    return np.asarray([self._perm(int(e))[int(p)]
                       for e, p in zip(epoch, pos, strict=True)])


def _prefetch(ds: grain.MapDataset, num_workers: int, buffer: int,
              read_threads: int = READ_THREADS) -> grain.IterDataset:
  """Batches loaded ahead by threads of each loading process.

  grain's defaults (16 threads, 500 elements ahead) would hold up to 500
  whole BATCHES per process here (gigabytes at 224 px); `buffer` batches
  ahead in `read_threads` threads are enough to hide the loading.
  """
  it = ds.to_iter_dataset(grain.ReadOptions(
      num_threads=read_threads, prefetch_buffer_size=max(buffer, 1)))
  if num_workers > 0:
    it = it.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=num_workers, per_worker_buffer_size=buffer))
  return it


def train_dataset(source: Any, index: sources.SplitIndex, spec: InputSpec,
                  global_batch: int, batch_sharding,
                  num_workers: int = 0, buffer: int = 2,
                  rows: tuple[int, int] | None = None,
                  read_threads: int = READ_THREADS) -> grain.IterDataset:
  """The infinite, shuffled training stream of this process's rows.

  Args:
    source: random-access record source of the split.
    index: its `SplitIndex`.
    spec: fields and reference sampling.
    global_batch: examples per global batch (all processes).
    batch_sharding: the batch NamedSharding (decides this process's rows).
    num_workers: grain worker processes (0: load in the main process).
    buffer: batches prefetched per worker.
    rows: this process's rows [start, stop) of each global batch; default
      from `batch_sharding` (`sharding.process_rows`).
    read_threads: threads loading batches in each loading process.

  Returns:
    A grain IterDataset of host-local numpy batches; `iter()` of it is
    checkpointable with `grain.checkpoint.CheckpointSave`.
  """
  n = len(index.example_records())
  if n < global_batch:
    raise sources.DataError(
        f"the split has {n} examples, fewer than one batch of "
        f"{global_batch}; use a smaller config.batch_size or more data.")
  rows = rows or shd.process_rows(global_batch, batch_sharding)
  ds = (grain.MapDataset.range(ENDLESS)
        .map(_BatchPositions(n, global_batch, rows, spec.seed))
        .map_with_index(LoadRows(source, index, spec, global_batch, rows)))
  return _prefetch(ds, num_workers, buffer, read_threads)


def eval_dataset(source: Any, index: sources.SplitIndex, spec: InputSpec,
                 global_batch: int, batch_sharding,
                 num_workers: int = 0) -> tuple[grain.IterDataset, int]:
  """One ordered pass over the examples, padded to whole batches.

  Padding rows repeat the first examples with 'mask' 0, so every batch has
  the static shape the compiled eval step expects.

  Returns:
    (dataset, number of real examples).
  """
  n = len(index.example_records())
  if n == 0:
    raise sources.DataError("the evaluation split has no examples")
  padded = -(-n // global_batch) * global_batch
  rows = shd.process_rows(global_batch, batch_sharding)
  ds = (grain.MapDataset.range(padded // global_batch)
        .map(_BatchPositions(n, global_batch, rows, None))
        .map_with_index(LoadRows(source, index, spec, global_batch, rows,
                                 num_valid=n)))
  return _prefetch(ds, num_workers, 2), n


class GlobalBatches(Iterator):
  """Wraps a grain iterator; yields global sharded `jax.Array` batches.

  With `prefetch=k`, the next k batches are already being transferred to
  the devices (jax transfers are asynchronous) while the current step runs.
  `checkpointable()` is what to save: its state is the position of the next
  batch the TRAINER will see, not of the prefetched ones, so a resumed run
  continues with exactly that batch.
  """

  def __init__(self, dataset: grain.IterDataset, batch_sharding,
               global_batch: int, prefetch: int = 0):
    self.grain_iterator = iter(dataset)
    self._sharding = batch_sharding
    self._global_batch = global_batch
    self._prefetch = prefetch
    self._queue: list[tuple[Any, dict]] = []

  def _fetch(self) -> None:
    state = self.grain_iterator.get_state() if self._prefetch else None
    host = next(self.grain_iterator)
    self._queue.append(
        (state, shd.to_global(host, self._sharding, self._global_batch)))

  def __next__(self) -> dict[str, jax.Array]:
    if not self._queue:
      self._fetch()
    _, batch = self._queue.pop(0)
    for _ in range(self._prefetch - len(self._queue)):
      try:
        self._fetch()
      except StopIteration:
        break
    return batch

  def checkpointable(self):
    """An object with grain's get_state/set_state for Orbax."""
    return _Position(self)


class _Position:
  """The stream position of the next unconsumed batch (see GlobalBatches).

  grain's Orbax handler treats objects that are not grain iterators as
  legacy iterators: state as JSON bytes, and `start_prefetch` on restore.
  """

  def __init__(self, batches: GlobalBatches):
    self._b = batches

  def get_state(self) -> bytes:
    if self._b._queue:
      state = self._b._queue[0][0]
    else:
      state = self._b.grain_iterator.get_state()
    return json.dumps(state, indent=2).encode()

  def set_state(self, state: bytes) -> None:
    self._b._queue.clear()
    self._b.grain_iterator.set_state(json.loads(state))

  def start_prefetch(self) -> None:
    start = getattr(self._b.grain_iterator, "start_prefetch", None)
    if start is not None:
      start()
