"""Loading one batch: example positions -> a host uint8 numpy batch.

`LoadRows` is the grain map of `jaxpain.data.pipeline`: for each row of a
batch it reads the example's record (only the features it uses, from
sources with `fields()` such as `records.TfdsRecords`), decodes the pain
image straight into its batch row, and adds the neutral reference: the
record's own (same-view) or a reference record of the identity drawn by a
hash of the stream position (random-view), both through a per-process
cache of decoded neutrals. Errors name the record (and, for TFDS data, the
shard and what to do).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxpain.data import records, sources


class _NeutralCache:
  """Decoded neutral images, filled until the budget, never evicted.

  Keys: ('record', id) for a reference record's image, ('bytes', data)
  for an encoded neutral_image (the same bytes are the same pixels).
  """

  def __init__(self, budget_bytes: int):
    self._budget, self._used = budget_bytes, 0
    self._images: dict[tuple, np.ndarray] = {}

  def get(self, key: tuple) -> np.ndarray | None:
    return self._images.get(key)

  def put(self, key: tuple, image: np.ndarray) -> None:
    if self._used + image.nbytes <= self._budget:
      self._images[key] = image.copy()
      self._used += image.nbytes


class _Batch:
  """Arrays of one batch, allocated from the first row's shapes, so that
  images are decoded straight into their row."""

  def __init__(self, rows: int):
    self.rows, self.arrays = rows, {}

  def put(self, name: str, row: int, value) -> None:
    value = np.asarray(value)
    if name not in self.arrays:
      self.arrays[name] = np.empty((self.rows,) + value.shape, value.dtype)
    self.arrays[name][row] = value

  def slot(self, name: str, index: tuple) -> np.ndarray | None:
    """The row (or (row, j)) of an allocated image field, else None."""
    arr = self.arrays.get(name)
    return None if arr is None else arr[index]

  def allocate(self, name: str, per_row: tuple, image: np.ndarray) -> None:
    self.arrays[name] = np.empty((self.rows,) + per_row + image.shape,
                                 np.uint8)


class LoadRows:
  """grain map: (global batch number, its local positions) -> numpy batch.

  A module-level class so grain's spawned workers can unpickle it. Sources
  with `fields(i, names)` (`records.TfdsRecords`) are read partially and
  decoded here (only the images the batch uses, straight into the batch);
  other sources are indexed (`source[i]`, decoded by the source).
  """

  def __init__(self, source: Any, index: sources.SplitIndex,
               spec: Any, global_batch: int, rows: tuple[int, int],
               num_valid: int | None = None):
    self._source = source
    self._examples = index.example_records()
    self._identity = index.identity
    self._refs = index.reference_table()
    self._spec = spec
    self._global_batch = global_batch
    self._start = rows[0]
    self._num_valid = num_valid
    self._cache = _NeutralCache(spec.neutral_cache_mb << 20)

  def __getstate__(self):  # each process fills its own cache
    state = dict(self.__dict__)
    state["_cache"] = _NeutralCache(self._spec.neutral_cache_mb << 20)
    return state

  def __call__(self, batch_number: int, positions: np.ndarray) -> dict:
    n = len(self._examples)
    batch = _Batch(len(positions))
    for row, pos in enumerate(positions):
      pos = int(pos)
      valid = self._num_valid is None or pos < self._num_valid
      record_id = int(self._examples[pos % n])
      stream_pos = batch_number * self._global_batch + self._start + row
      self._load(batch, row, record_id, stream_pos)
      batch.put("mask", row, np.float32(valid))
    return batch.arrays

  # -------------------------------------------------------------- records

  def _read(self, record_id: int, names: tuple[str, ...]) -> Mapping:
    if hasattr(self._source, "fields"):
      return self._source.fields(record_id, names)
    return self._source[record_id]

  def _image(self, batch: _Batch, name: str, index: tuple, value,
             record_id: int, channels: int = 3) -> np.ndarray:
    """Decodes `value` into batch[name][index]; returns that slot."""
    size = self._spec.image_size
    try:
      out = batch.slot(name, index)
      if out is not None:
        return records.decode(value, channels, out=out, target=size)
      img = records.decode(value, channels, target=size)
    except records.RecordError:
      raise
    except (ValueError, OSError, RuntimeError) as e:
      raise self._damaged(record_id, e) from None
    batch.allocate(name, (self._spec.num_references,)
                   if len(index) == 2 else (), img)
    out = batch.slot(name, index)
    out[...] = img
    return out

  def _damaged(self, record_id: int, e: Exception) -> Exception:
    """The error of an image that cannot be used, naming its record."""
    if isinstance(e, sources.DataError):  # readable, but wrong shape/type
      where = (self._source.where(record_id) if hasattr(self._source, "where")
               else f"record {record_id}")
      return sources.DataError(f"{where}: {e}")
    problem = f"undecodable image, {type(e).__name__}: {e}"
    if hasattr(self._source, "damaged"):
      return self._source.damaged(record_id, problem)
    return sources.DataError(f"record {record_id}: {problem}")

  # ------------------------------------------------------------- examples

  def _load(self, batch: _Batch, row: int, record_id: int,
            stream_pos: int) -> None:
    fields, spec = self._spec.fields, self._spec
    same_view = spec.num_references == 1 and spec.neutral_mode == "same_view"
    images = [f for f in ("image", "heatmap") if f in fields]
    names = ("au", "pspi", "identity", *images) + (
        ("neutral_image",) if "neutral" in fields and same_view else ())
    rec = self._read(record_id, names)
    sources.require_fields(rec, ["au", "pspi", *images], "dataset")
    batch.put("au", row, np.asarray(rec["au"], np.float32).reshape(6))
    batch.put("pspi", row, np.float32(rec["pspi"]))
    batch.put("identity", row, np.int32(rec.get("identity", -1)))
    batch.put("record", row, np.int32(record_id))
    if "image" in fields:
      self._image(batch, "image", (row,), rec["image"], record_id)
    if "heatmap" in fields:
      self._image(batch, "heatmap", (row,), rec["heatmap"], record_id, 1)
    if "neutral" in fields:
      if same_view:
        sources.require_fields(rec, ["neutral_image"], "dataset")
        self._same_view(batch, row, rec["neutral_image"], record_id)
      else:
        self._references(batch, row, record_id, stream_pos)

  def _same_view(self, batch: _Batch, row: int, value, record_id: int):
    key = ("bytes", value.data) if isinstance(value, records.Encoded) else None
    self._cached(batch, (row,), key, lambda: value, record_id)

  def _references(self, batch: _Batch, row: int, record_id: int,
                  stream_pos: int) -> None:
    spec = self._spec
    refs = self._refs.get(int(self._identity[record_id]), np.zeros(0, int))
    if len(refs) == 0:  # no reference of this identity: the released rule
      draw = [None] * spec.num_references
    elif spec.num_references == 1:
      draw = [refs[_uniform64(spec.seed, stream_pos) % len(refs)]]
    else:
      rng = np.random.default_rng([spec.seed, 7, stream_pos])
      draw = rng.choice(refs, size=spec.num_references,
                        replace=len(refs) < spec.num_references)
    for j, ref in enumerate(draw):
      index = (row,) if spec.num_references == 1 else (row, j)
      if ref is None:
        self._cached(batch, index, None, lambda: self._fallback(record_id),
                     record_id)
      else:
        ref = int(ref)
        self._cached(batch, index, ("record", ref),
                     lambda r=ref: self._read(r, ("image",))["image"], ref)

  def _fallback(self, record_id: int):
    rec = self._read(record_id, ("neutral_image", "image"))
    return rec.get("neutral_image", rec.get("image"))

  def _cached(self, batch: _Batch, index: tuple, key: tuple | None,
              value_fn, record_id: int) -> None:
    """Neutral image into batch['neutral'][index], via the cache."""
    hit = self._cache.get(key) if key is not None else None
    if hit is not None:
      self._image(batch, "neutral", index, hit, record_id)
      return
    img = self._image(batch, "neutral", index, value_fn(), record_id)
    if key is not None:
      self._cache.put(key, img)


_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
  x = (x + 0x9E3779B97F4A7C15) & _MASK64
  x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
  x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
  return x ^ (x >> 31)


def _uniform64(seed: int, stream_pos: int) -> int:
  """A uniform 64-bit draw keyed by (seed, stream position), in about a
  microsecond: a numpy Generator per example costs about 30 us, more than
  the rest of a cached random-view neutral."""
  return _splitmix64(_splitmix64(seed & _MASK64) ^ stream_pos)
