"""The identity-to-record index kept next to `dataset_info.json`.

Multi-shot inference and neutral-reference training want "another neutral
view of this identity" while reading `tfds.data_source('3dpain')` in random
order. Scanning the split for it would read every record, so the build writes
a small table instead: for every record position `i` of every split (the
position `data_source[i]` reads), its identity, expression and view. TFDS
places examples by a hash of their key, so positions are only known after
writing; `build()` reads the finished ArrayRecord shards back once, parsing
just the three integers from each `tf.train.Example`.

  idx = tfds_3dpain.neutral_index(builder, 'train')
  ex = source[i]
  ref = source[idx.neutral(ex['identity'], view=2)]
  others = idx.neutrals(ex['identity'])  # record positions, one per view
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from array_record.python import array_record_module
from etils import epath
from tensorflow_datasets.proto import tf_example_pb2

INDEX_FILE = "3dpain_index.npz"
FIELDS = ("identity", "expression", "view")
_READ_BATCH = 256


def _int_field(example: tf_example_pb2.Example, name: str) -> int:
  return example.features.feature[name].int64_list.value[0]


def _read_split(paths: list[epath.Path]) -> dict[str, np.ndarray]:
  """FIELDS of every record, in data_source order (shard, then record)."""
  cols = {name: [] for name in FIELDS}
  for path in paths:
    reader = array_record_module.ArrayRecordReader(str(path))  # Sequential.
    try:
      n = reader.num_records()
      for start in range(0, n, _READ_BATCH):
        for raw in reader.read(start, min(n, start + _READ_BATCH)):
          example = tf_example_pb2.Example.FromString(raw)
          for name in FIELDS:
            cols[name].append(_int_field(example, name))
    finally:
      reader.close()
  return {name: np.asarray(v, np.int32) for name, v in cols.items()}


def build(split_paths: dict[str, list[epath.Path]], data_dir: epath.Path):
  """Writes INDEX_FILE for the given {split: ArrayRecord shard paths}."""
  arrays = {}
  for split, paths in split_paths.items():
    for name, col in _read_split(paths).items():
      arrays[f"{split}/{name}"] = col
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  (epath.Path(data_dir) / INDEX_FILE).write_bytes(buf.getvalue())


@dataclasses.dataclass(frozen=True)
class RecordIndex:
  """Identity, expression and view of every record position of one split.

  Attributes:
    split: the split name.
    identity, expression, view: (num_records,) int32 arrays; entry i
      describes `tfds.data_source('3dpain', split=split)[i]`.
    neutral_table: (max identity + 1, max view + 1) int64, the position of
      the neutral record of (identity, view), -1 where there is none. Index
      it with arrays for vectorised look-ups inside a grain transform.
  """

  split: str
  identity: np.ndarray
  expression: np.ndarray
  view: np.ndarray
  neutral_table: np.ndarray

  @classmethod
  def from_columns(cls, split, identity, expression, view) -> RecordIndex:
    table = np.full((identity.max() + 1, view.max() + 1), -1, np.int64)
    (pos,) = np.nonzero(expression == 0)
    table[identity[pos], view[pos]] = pos
    return cls(split, identity, expression, view, table)

  def __len__(self) -> int:
    return len(self.identity)

  def neutral(self, identity: int, view: int = 0) -> int:
    """Position of the neutral record of (identity, view); KeyError if none."""
    pos = -1
    if 0 <= identity < self.neutral_table.shape[0] and (
        0 <= view < self.neutral_table.shape[1]
    ):
      pos = int(self.neutral_table[identity, view])
    if pos < 0:
      raise KeyError(
          f"split {self.split!r} has no neutral record of identity "
          f"{identity} view {view}"
      )
    return pos

  def neutrals(self, identity: int) -> np.ndarray:
    """Positions of the identity's neutral records, ordered by view."""
    if not 0 <= identity < self.neutral_table.shape[0]:
      return np.zeros((0,), np.int64)
    row = self.neutral_table[identity]
    return row[row >= 0]

  def records_of(self, identity: int) -> np.ndarray:
    """Positions of every record of the identity (any expression, view)."""
    return np.nonzero(self.identity == identity)[0]


def _version_dir(builder_or_dir) -> epath.Path:
  if hasattr(builder_or_dir, "data_path"):
    return epath.Path(builder_or_dir.data_path)
  return epath.Path(builder_or_dir)


def neutral_index(builder_or_dir, split: str) -> RecordIndex:
  """The RecordIndex of one split of a prepared `3dpain` dataset.

  Args:
    builder_or_dir: a prepared `3dpain` builder, or its version folder
      (`<data_dir>/3dpain/<config>/<version>`).
    split: a whole split name (`train`, `validation`, `test`); positions of
      sliced splits such as `train[:10%]` differ, so slices are refused.

  Returns:
    The RecordIndex of that split.
  """
  if not split.isidentifier():
    raise ValueError(
        f"neutral_index takes a whole split name, got {split!r}; positions "
        "refer to the full split, so slice the data source, not the index"
    )
  path = _version_dir(builder_or_dir) / INDEX_FILE
  if not path.exists():
    if (path.parent / "dataset_info.json").exists():
      raise FileNotFoundError(
          f"{path} does not exist: {path.parent} was prepared in a format "
          "without random access (file_format other than array_record), "
          "for which record positions mean nothing; prepare it as ArrayRecord"
      )
    raise FileNotFoundError(
        f"{path} does not exist: prepare the dataset first "
        "(download_and_prepare or tfds build), or point at the version folder "
        "<data_dir>/3dpain/<config>/<version>"
    )
  with np.load(io.BytesIO(path.read_bytes())) as data:
    if f"{split}/identity" not in data:
      splits = sorted({k.split("/")[0] for k in data.files})
      raise KeyError(f"no split {split!r} in {path}; it holds {splits}")
    cols = [data[f"{split}/{name}"] for name in FIELDS]
  return RecordIndex.from_columns(split, *cols)
