"""Random-access record sources and the per-split record index.

The trainer reads any random-access source (`len(src)`, `src[i]`) whose
records are dicts with the 3DPain fields (tfds_3dpain's features):

  'image'          (H, W, 3) uint8   the pain (or any) face
  'neutral_image'  (H, W, 3) uint8   neutral face, same identity and view
  'heatmap'        (H, W, 1) uint8   pain-region map (teacher input)
  'au'             (6,) float32      AU4, AU6, AU7, AU9, AU10, AU43
  'pspi'           float             0..16
  'identity', 'expression' (0 = neutral), 'view'   ints

Only the fields a run uses must exist (no heatmap without a teacher, no
neutral without the reference). A TFDS dataset (`3dpain/...`) is opened with
`tfds.data_source` and read through `records.TfdsRecords`, which reads the
same ArrayRecord shards but parses only the features a batch uses;
`ArraySource` wraps numpy arrays (tests, UNBC tables), and `register_source`
lets other code plug in its own (e.g. the UNBC runner).

Training uses pain records only (expression > 0, as the released code does);
neutral records are references. `SplitIndex` holds the labels needed to
choose records and references without decoding images.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from jaxpain.data import errors, records

IMAGE_FEATURES = ("image", "neutral_image", "heatmap")
DataError = errors.DataError


@dataclasses.dataclass
class SplitIndex:
  """Labels of every record of one split, for choosing without decoding.

  Attributes:
    identity: (N,) int identity (subject) of each record.
    view: (N,) int camera view (0 where a dataset has none).
    example: (N,) bool, records to train / evaluate on. 3DPain: pain images
      (expression > 0), as in the released code.
    reference: (N,) bool, records usable as neutral references. 3DPain:
      neutral images; UNBC: frames with PSPI == 0 of the same subject.
  """

  identity: np.ndarray
  view: np.ndarray
  example: np.ndarray
  reference: np.ndarray

  @classmethod
  def from_labels(cls, identity, expression, view=None) -> SplitIndex:
    """The 3DPain rule: train on pain, reference with neutral images."""
    identity = np.asarray(identity, np.int64)
    expression = np.asarray(expression, np.int64)
    view = np.zeros_like(identity) if view is None else np.asarray(view)
    return cls(identity, view.astype(np.int64), expression > 0,
               expression == 0)

  def example_records(self) -> np.ndarray:
    """Record indices of the examples, in record order."""
    return np.nonzero(self.example)[0].astype(np.int64)

  def reference_table(self) -> dict[int, np.ndarray]:
    """identity -> record indices of that identity's reference images."""
    table: dict[int, list[int]] = {}
    for i in np.nonzero(self.reference)[0]:
      table.setdefault(int(self.identity[i]), []).append(int(i))
    return {k: np.asarray(v, np.int64) for k, v in table.items()}


class ArraySource:
  """An in-memory random-access source over equal-length numpy columns.

  Picklable (grain ships it to worker processes). Missing 'expression' or
  'view' columns default to 1 (pain) and 0.
  """

  def __init__(self, columns: Mapping[str, np.ndarray]):
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) != 1:
      raise DataError(f"ArraySource columns differ in length: {lengths}")
    self._columns = {k: np.asarray(v) for k, v in columns.items()}
    self._len = next(iter(lengths.values()))

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, i: int) -> dict[str, Any]:
    return {k: v[i] for k, v in self._columns.items()}

  def record_index(self) -> SplitIndex:
    n = self._len
    cols = self._columns
    return SplitIndex.from_labels(
        cols.get("identity", np.zeros(n)), cols.get("expression", np.ones(n)),
        cols.get("view", np.zeros(n)))


# ------------------------------------------------------------- registry ----

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_source(name: str, factory: Callable[..., Any]) -> None:
  """Registers `factory(split=..., data_dir=...) -> source` under `name`.

  `config.data.name` chooses the source; names not registered go to TFDS.
  """
  _REGISTRY[name] = factory


def open_source(name: str, split: str, data_dir: str | None = None) -> Any:
  """Opens a split of a registered source or of a TFDS dataset.

  TFDS ArrayRecord datasets come back as `records.TfdsRecords` (direct,
  partial reads); other TFDS sources as `tfds.data_source` gives them.

  Raises:
    DataError: the dataset or split does not exist (with what to do).
  """
  if name in _REGISTRY:
    return _REGISTRY[name](split=split, data_dir=data_dir)
  src = _tfds_source(name, split, data_dir)
  return records.TfdsRecords.from_data_source(src, name) or src


def _tfds_source(name: str, split: str, data_dir: str | None,
                 decoders: Any = None) -> Any:
  import tensorflow_datasets as tfds

  try:  # registers '3dpain' (and TFDS's name patch) when installed
    import tfds_3dpain  # noqa: F401
  except ImportError:
    pass
  where = data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
  try:
    return tfds.data_source(
        name, split=split, data_dir=data_dir, download=False,
        decoders=decoders)
  except Exception as e:  # TFDS raises several types for "not there"
    raise DataError(
        f"cannot open dataset {name!r} split {split!r} in {where}: "
        f"{type(e).__name__}: {e}. Build it first (e.g. `tfds build` or "
        "the README's data command) or set config.data.data_dir."
    ) from e


def split_index(source: Any, name: str | None = None, split: str | None = None,
                data_dir: str | None = None) -> SplitIndex:
  """Labels of all records of a split (identity, expression, view).

  Uses the source's own `record_index()` when it has one; for TFDS sources
  it re-opens the split with image decoding skipped, so the scan reads only
  the small label features.
  """
  if hasattr(source, "record_index"):
    return source.record_index()
  prepared = _prepared_index(source, split)
  if prepared is not None:
    return prepared
  if isinstance(source, records.TfdsRecords):
    cols = [source.fields(i, ("identity", "expression", "view"))
            for i in range(len(source))]
    return SplitIndex.from_labels(
        *[[int(c.get(k, 1 if k == "expression" else 0)) for c in cols]
          for k in ("identity", "expression", "view")])
  reader = source
  if name is not None and name not in _REGISTRY:
    reader = _label_reader(name, split, data_dir) or source
  n = len(reader)
  cols = {"identity": [], "expression": [], "view": []}
  logging.info("indexing %d records of %s/%s", n, name, split)
  for start in range(0, n, 256):
    batch = _get_many(reader, range(start, min(n, start + 256)))
    for rec in batch:
      for k in cols:
        cols[k].append(int(rec.get(k, 1 if k == "expression" else 0)))
  return SplitIndex.from_labels(**cols)


def _prepared_index(source: Any, split: str | None) -> SplitIndex | None:
  """The index `3dpain` builds keep next to dataset_info.json, if any."""
  info = getattr(source, "dataset_info", None)
  if info is None or split is None or not split.isidentifier():
    return None
  try:
    import tfds_3dpain

    idx = tfds_3dpain.neutral_index(info.data_dir, split)
  except (ImportError, FileNotFoundError, KeyError, ValueError):
    return None
  return SplitIndex.from_labels(idx.identity, idx.expression, idx.view)


def _label_reader(name, split, data_dir):
  import tensorflow_datasets as tfds

  try:
    src = _tfds_source(name, split, data_dir)
    feats = src.dataset_info.features
    skip = {k: tfds.decode.SkipDecoding() for k in feats.keys()
            if k in IMAGE_FEATURES or k.endswith("image")}
    return _tfds_source(name, split, data_dir, decoders=skip)
  except Exception:  # any reader problem: fall back to full decoding
    logging.exception("label-only reader unavailable; decoding images")
    return None


def _get_many(source: Any, indices: Sequence[int]) -> list[dict]:
  """Batched reads where the source supports them (ArrayRecord does)."""
  if hasattr(source, "__getitems__"):
    try:
      return list(source.__getitems__(list(indices)))
    except TypeError:  # e.g. tfds.testing.mock_data's source
      pass
  return [source[i] for i in indices]


def require_fields(record: Mapping[str, Any], fields: Sequence[str],
                   what: str) -> None:
  """Raises DataError naming the fields a run needs but the data lacks."""
  missing = [f for f in fields if f not in record]
  if missing:
    raise DataError(
        f"{what} records lack {missing} (have {sorted(record)}); this run "
        "needs them: check config.data / config.teacher."
    )
