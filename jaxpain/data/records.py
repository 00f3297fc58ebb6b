"""Direct reads of a TFDS ArrayRecord split: only what a batch uses.

`tfds.data_source` turns a record into a dict by deserializing every feature
through TFDS's numpy path (about 110 us per `3dpain` record before any image
is decoded, measured) and decoding every image feature (pain image, neutral
image and heatmap: about 1.6 ms per record at 256 px). A training step
needs one or two images and three labels of it. `TfdsRecords` reads the
same shards with `ArrayRecordReader`, parses the `tf.train.Example` with
protobuf (about 20 us read + parse) and returns only the features asked
for; images stay encoded (`Encoded`) until `decode` puts them where they go
(into a batch row, without a copy), at a DCT-domain scale of 1/2, 1/4 or
1/8 when the model wants a much smaller image than the stored one.

It is also a full random-access source (`src[i]` decodes every feature with
TFDS's own code), so everything that reads `tfds.data_source` reads it.

A record that cannot be read or decoded raises `RecordError`, one line
naming the dataset, the split, the shard file and the record's index in it,
and what to do. Nothing here ever writes or deletes a file.
"""

from __future__ import annotations

import bisect
import dataclasses
import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxpain.data import errors

# Reader options as TFDS's own data source uses them: no read-ahead
# (random access), a small buffer.
_READER_OPTIONS = "readahead_buffer_size:0"
_READER_BUFFER = 32768
_DECODE_ERRORS = (ValueError, OSError, RuntimeError, SyntaxError)


class RecordError(errors.DataError):
  """A record that cannot be read or decoded (a damaged dataset)."""


@dataclasses.dataclass(frozen=True)
class Encoded:
  """An image feature as stored: 'jpeg' or 'png' bytes, its channels."""

  kind: str
  data: bytes
  channels: int


@dataclasses.dataclass(frozen=True)
class _Shard:
  path: str
  skip: int  # first record of the shard in this split (slices skip some)
  take: int
  num_records: int  # records the dataset info says the file holds


def _feature_kinds(features) -> dict[str, tuple]:
  """name -> (kind, numpy dtype, shape) for the top-level features."""
  import tensorflow_datasets as tfds

  kinds = {}
  for name, feat in features.items():
    if isinstance(feat, tfds.features.Image):
      kinds[name] = ("image", feat.encoding_format or "png", feat.shape)
    elif isinstance(feat, tfds.features.Text):
      kinds[name] = ("text", None, ())
    elif isinstance(feat, tfds.features.Tensor):
      enc = feat._encoding  # TFDS has no public accessor
      raw = enc == tfds.features.Encoding.BYTES and None not in feat.shape
      kinds[name] = ("raw" if raw else "tensor" if enc ==
                     tfds.features.Encoding.NONE else "other",
                     feat.np_dtype, feat.shape)
    else:
      kinds[name] = ("other", None, None)
  return kinds


class TfdsRecords:
  """Random access to one split of a prepared TFDS ArrayRecord dataset.

  Picklable: readers are opened lazily in each process (grain workers).

  Attributes:
    name: the dataset name as opened (e.g. '3dpain/small').
    split: the split (slices such as 'train[:10%]' allowed).
    dataset_info: TFDS's DatasetInfo (for `sources.split_index`).
  """

  def __init__(self, name: str, split: str, dataset_info,
               instructions: Sequence[Any]):
    self.name, self.split, self.dataset_info = name, split, dataset_info
    self._kinds = _feature_kinds(dataset_info.features)
    self._shards = [_Shard(str(fi.filename), fi.skip, fi.take,
                           fi.examples_in_shard) for fi in instructions]
    self._ends = np.cumsum([s.take for s in self._shards]).tolist()
    self._readers: dict[int, Any] = {}

  @classmethod
  def from_data_source(cls, source, name: str) -> TfdsRecords | None:
    """The direct reader of a `tfds.data_source` split; None if not one.

    None for sources without ArrayRecord files (e.g. TFDS's mock_data).
    """
    from tensorflow_datasets.core.data_sources import array_record, base

    if not isinstance(source, array_record.ArrayRecordDataSource):
      return None
    info = source.dataset_info
    try:  # mocked sources (tfds.testing.mock_data) have no files
      instructions = base.file_instructions(info, source.split)
    except (KeyError, ValueError):
      return None
    if sum(fi.take for fi in instructions) != len(source):
      return None
    return cls(name, str(source.split), info, instructions)

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_readers"] = {}
    return state

  def __len__(self) -> int:
    return self._ends[-1] if self._ends else 0

  # ------------------------------------------------------------ reading --

  def _locate(self, i: int) -> tuple[int, int]:
    """(shard number, record index inside the shard file) of position i."""
    if not 0 <= i < len(self):
      raise IndexError(f"record {i} of {len(self)} in {self.name} "
                       f"{self.split}")
    k = bisect.bisect_right(self._ends, i)
    before = self._ends[k - 1] if k else 0
    return k, self._shards[k].skip + i - before

  def where(self, i: int) -> str:
    """Where record i lives, for messages: dataset, split, shard, index."""
    k, local = self._locate(i)
    shard = self._shards[k]
    return (f"dataset {self.name} split {self.split!r} record {i}: shard "
            f"{shard.path}, record {local} of {shard.num_records} in it")

  def damaged(self, i: int, problem: str) -> RecordError:
    """The one-line error for a record that cannot be used."""
    info = self.dataset_info
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        str(info.data_dir))))
    config = f" --config {info.config_name}" if info.config_name else ""
    return RecordError(
        f"{self.where(i)} is damaged ({problem}). Nothing was changed; "
        "restore the folder from a copy or rebuild the dataset on purpose: "
        f"`tfds build {info.name}{config} --data_dir {root} --overwrite`.")

  def _reader(self, k: int):
    reader = self._readers.get(k)
    if reader is None:
      from array_record.python import array_record_module

      shard = self._shards[k]
      reader = array_record_module.ArrayRecordReader(
          shard.path, _READER_OPTIONS, file_reader_buffer_size=_READER_BUFFER)
      if reader.num_records() != shard.num_records:
        got = reader.num_records()
        reader.close()
        first = sum(s.take for s in self._shards[:k])
        raise self.damaged(first, f"the shard holds {got} records, the "
                           f"dataset info says {shard.num_records}: "
                           "truncated or replaced")
      self._readers[k] = reader
    return reader

  def read(self, i: int) -> bytes:
    """The serialized record at position i."""
    k, local = self._locate(int(i))
    try:
      return self._reader(k).read([local])[0]
    except RecordError:
      raise
    except _DECODE_ERRORS as e:
      raise self.damaged(int(i), f"{type(e).__name__}: {e}") from None

  def fields(self, i: int, names: Sequence[str]) -> dict[str, Any]:
    """The named features of record i; images stay `Encoded`.

    Features the record lacks are left out (callers name what is missing).
    Raw uint8 images come back as arrays (views of the record's bytes).
    """
    from tensorflow_datasets.proto import tf_example_pb2

    raw = self.read(i)
    try:
      feats = tf_example_pb2.Example.FromString(raw).features.feature
      return {n: self._value(feats[n], n, raw) for n in names if n in feats}
    except _DECODE_ERRORS as e:
      raise self.damaged(int(i), f"{type(e).__name__}: {e}") from None

  def _value(self, feat, name: str, raw: bytes) -> Any:
    kind, dtype, shape = self._kinds.get(name, ("other", None, None))
    if kind == "image":
      return Encoded(dtype, feat.bytes_list.value[0], shape[-1])
    if kind == "raw":
      return np.frombuffer(feat.bytes_list.value[0], dtype).reshape(shape)
    if kind == "text":
      return feat.bytes_list.value[0]
    if kind == "tensor":
      values = (feat.int64_list.value or feat.float_list.value
                or feat.bytes_list.value)
      arr = np.asarray(values, dtype)
      return arr.reshape(shape) if shape else arr.reshape(())[()]
    return self.dataset_info.features.deserialize_example_np(raw)[name]

  def __getitem__(self, i: int) -> dict[str, Any]:
    """Every feature of record i, decoded by TFDS (as tfds.data_source)."""
    raw = self.read(i)
    try:
      return self.dataset_info.features.deserialize_example_np(raw)
    except Exception as e:  # TFDS raises many types for bad bytes
      raise self.damaged(int(i), f"{type(e).__name__}: {e}") from None

  def __getitems__(self, ids: Sequence[int]) -> list[dict[str, Any]]:
    return [self[int(i)] for i in ids]

  def __repr__(self) -> str:
    return f"TfdsRecords({self.name!r}, split={self.split!r}, n={len(self)})"


# ------------------------------------------------------------- decoding --


def jpeg_scale(stored: int, target: int | None) -> int:
  """DCT-domain reduction 1, 2, 4 or 8 for a JPEG of side `stored`.

  The largest power of two that keeps the decoded side >= target (the
  device resizes the rest). Only powers of two: libjpeg-turbo's other
  factors (e.g. 7/8 for 256 -> 224) decode slower than full size here
  (docs/benchmarks.md §3).
  """
  k = 1
  while target and k < 8 and stored >= 2 * k * target:
    k *= 2
  return k


def decode(value: Any, channels: int, out: np.ndarray | None = None,
           target: int | None = None) -> np.ndarray:
  """An image feature's pixels: (H, W, channels) uint8.

  Args:
    value: an `Encoded` image, or an already decoded array.
    channels: 3 (RGB) or 1.
    out: where to put the pixels (e.g. a row of the batch): JPEGs are
      decoded straight into it; must have the decoded shape.
    target: the side the model wants; JPEGs at least twice as large are
      decoded at a DCT-domain reduction (`jpeg_scale`).

  Returns:
    The pixels (`out` when given).

  Raises:
    ValueError: undecodable bytes; errors.DataError: wrong shape or dtype.
  """
  if isinstance(value, Encoded):
    if value.kind == "jpeg":
      img = _decode_jpeg(value.data, channels, out, target)
    else:
      from PIL import Image

      with Image.open(io.BytesIO(value.data)) as im:
        img = np.asarray(im.convert("RGB" if channels == 3 else "L"))
  else:
    img = np.asarray(value)
  if img.ndim == 2:
    img = img[..., None]
  if img.dtype != np.uint8:
    raise errors.DataError(f"images must be uint8, got {img.dtype}")
  if img.shape[-1] != channels:
    raise errors.DataError(
        f"expected {channels} channel(s), got image of shape {img.shape}")
  if out is not None and img is not out:
    if img.shape != out.shape:
      raise errors.DataError(
          f"image of shape {img.shape} where the batch holds {out.shape}: "
          "the dataset's images differ in size; store them at one size "
          "(tfds_3dpain ImageStorage(size=...)).")
    out[...] = img
    return out
  return img


def _decode_jpeg(data: bytes, channels: int, out, target) -> np.ndarray:
  import simplejpeg

  space = "RGB" if channels == 3 else "GRAY"
  if target is None and out is None:
    return simplejpeg.decode_jpeg(data, space)
  h, w, _, _ = simplejpeg.decode_jpeg_header(data)
  k = jpeg_scale(min(h, w), target)
  h, w = -(-h // k), -(-w // k)  # libjpeg rounds scaled sides up
  kw = {"min_height": h, "min_width": w} if k > 1 else {}
  if out is not None and out.flags.c_contiguous and out.shape == (
      h, w, channels):
    simplejpeg.decode_jpeg(data, space, buffer=out, **kw)
    return out
  return simplejpeg.decode_jpeg(data, space, **kw)
