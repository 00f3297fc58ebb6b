"""grain input pipeline: records -> global sharded `jax.Array` batches.

The host only decodes and pairs; resizing, augmentation and normalisation
run on the device inside the jitted step (`jaxpain.data.augment`).

Batches are built from POSITIONS, not records: a seeded, per-epoch shuffled,
repeated stream of example positions is cut into global batches of
`global_batch` positions (cheap integers), each process keeps the rows its
devices hold (`sharding.process_rows`, a contiguous block), and only then
loads those records. So global batch k holds the same examples in the same
order for any number of processes and any mesh: one process x 8 devices
and two processes x 4 devices see identical data, and per-example
randomness (the random neutral view) is keyed by the global stream position.
grain's own `[process_index::process_count]` interleaves rows across
processes, which would break that equivalence.

The grain iterator's state (saved with every checkpoint) is the number of
global batches consumed, so resumed runs continue with exactly the next
batch.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from typing import Any

import grain
import jax
import numpy as np

from jaxpain import sharding as shd
from jaxpain.data import sources

NEUTRAL_MODES = ("same_view", "random_view")


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
  """

  fields: tuple[str, ...] = ("image", "neutral")
  neutral_mode: str = "same_view"
  num_references: int = 1
  seed: int = 0

  def __post_init__(self):
    if self.neutral_mode not in NEUTRAL_MODES:
      raise ValueError(
          f"neutral_mode {self.neutral_mode!r} not in {NEUTRAL_MODES}")
    if self.num_references < 1:
      raise ValueError(f"num_references must be >= 1: {self.num_references}")


class LoadRows:
  """grain map: (global batch number, its local positions) -> numpy batch.

  A module-level class so grain's spawned workers can unpickle it.
  """

  def __init__(self, source: Any, index: sources.SplitIndex,
               spec: InputSpec, global_batch: int, rows: tuple[int, int],
               num_valid: int | None = None):
    self._source = source
    self._examples = index.example_records()
    self._identity = index.identity
    self._refs = index.reference_table()
    self._spec = spec
    self._global_batch = global_batch
    self._start = rows[0]
    self._num_valid = num_valid

  def __call__(self, batch_number: int, positions: np.ndarray) -> dict:
    n = len(self._examples)
    out: dict[str, list] = {}
    for row, pos in enumerate(positions):
      pos = int(pos)
      valid = self._num_valid is None or pos < self._num_valid
      record_id = int(self._examples[pos % n])
      stream_pos = batch_number * self._global_batch + self._start + row
      ex = self._load(record_id, stream_pos)
      ex["mask"] = np.float32(valid)
      for k, v in ex.items():
        out.setdefault(k, []).append(v)
    return {k: np.stack(v) for k, v in out.items()}

  def _load(self, record_id: int, stream_pos: int) -> dict:
    rec = self._source[record_id]
    fields = self._spec.fields
    need = ["au", "pspi"] + [f for f in ("image", "heatmap") if f in fields]
    sources.require_fields(rec, need, "dataset")
    ex = {
        "au": np.asarray(rec["au"], np.float32).reshape(6),
        "pspi": np.float32(rec["pspi"]),
        "identity": np.int32(rec.get("identity", -1)),
        "record": np.int32(record_id),
    }
    if "image" in fields:
      ex["image"] = _uint8_image(rec["image"])
    if "heatmap" in fields:
      ex["heatmap"] = _uint8_image(rec["heatmap"], channels=1)
    if "neutral" in fields:
      ex["neutral"] = self._neutral(rec, record_id, stream_pos)
    return ex

  def _neutral(self, rec: Mapping, record_id: int, stream_pos: int):
    spec = self._spec
    refs = self._refs.get(int(self._identity[record_id]), np.zeros(0, int))
    fallback = rec.get("neutral_image", rec.get("image"))
    if spec.num_references == 1 and spec.neutral_mode == "same_view":
      if "neutral_image" not in rec:
        sources.require_fields(rec, ["neutral_image"], "dataset")
      return _uint8_image(rec["neutral_image"])
    if len(refs) == 0:  # no reference of this identity: the released rule
      imgs = [fallback] * spec.num_references
    else:
      rng = np.random.default_rng([spec.seed, 7, stream_pos])
      draw = rng.choice(refs, size=spec.num_references,
                        replace=len(refs) < spec.num_references)
      imgs = [self._source[int(j)]["image"] for j in draw]
    imgs = [_uint8_image(x) for x in imgs]
    return imgs[0] if spec.num_references == 1 else np.stack(imgs)


def _uint8_image(x: Any, channels: int = 3) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim == 2:
    x = x[..., None]
  if x.dtype != np.uint8:
    raise sources.DataError(f"images must be uint8, got {x.dtype}")
  if x.shape[-1] != channels:
    raise sources.DataError(
        f"expected {channels} channel(s), got image of shape {x.shape}")
  return x


class _TakeRows:
  """grain map: keeps this process's rows of a global batch of positions."""

  def __init__(self, start: int, stop: int):
    self.start, self.stop = start, stop

  def __call__(self, positions: np.ndarray) -> np.ndarray:
    return positions[self.start:self.stop]


def _prefetch(ds: grain.MapDataset, num_workers: int,
              buffer: int) -> grain.IterDataset:
  it = ds.to_iter_dataset()
  if num_workers > 0:
    it = it.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=num_workers, per_worker_buffer_size=buffer))
  return it


def train_dataset(source: Any, index: sources.SplitIndex, spec: InputSpec,
                  global_batch: int, batch_sharding,
                  num_workers: int = 0, buffer: int = 2,
                  rows: tuple[int, int] | None = None) -> grain.IterDataset:
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
  ds = (grain.MapDataset.range(n).seed(spec.seed).shuffle().repeat()
        .batch(global_batch, drop_remainder=True)
        .map(_TakeRows(*rows))
        .map_with_index(LoadRows(source, index, spec, global_batch, rows)))
  return _prefetch(ds, num_workers, buffer)


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
  ds = (grain.MapDataset.range(padded)
        .batch(global_batch, drop_remainder=True)
        .map(_TakeRows(*rows))
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
