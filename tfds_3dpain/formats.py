"""The TFRecord twin of the ArrayRecord shards, and the completeness marker.

ArrayRecord is the primary format (random access for grain). `tfds.load`
needs TFRecord, so when TensorFlow is installed the build copies each shard's
records (the same serialized `tf.train.Example`s) into a TFRecord shard of the
same name and registers TFRecord as an alternative format (stack.md §5).
The copy runs in a spawned child process, so that building never imports
TensorFlow into the caller: a JAX training process that prepares the data
and later imports torchvision would otherwise crash (TensorFlow before
torchvision segfaults, stack.md §11), and so would any later pyrender use.

Completeness: TFDS builds into a temporary folder and renames it, which is
atomic on a local disk but not on object stores (a rename there is a copy),
nor when someone copies a prepared folder and the copy is cut short. So the
last step of our build writes `MARKER`, listing every data file with its
size, and `incomplete_reason()` checks a folder against it. A folder that
fails the check is never deleted by a read, nor by a plain prepare: the
builder raises `DamagedBuildError`, and only an explicit rebuild (`tfds build
--overwrite`, or a download mode that overwrites) replaces it. An `official`
import or a `full` build is hours of work; a read must not throw it away.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import sys

from array_record.python import array_record_module
from etils import epath

from synth.cli_errors import UserError
from tfds_3dpain import runner

MARKER = "3dpain_files.json"
# Written by TFDS after our _download_and_prepare, so not in the marker.
TFDS_FILES = ("dataset_info.json", "features.json")
_COPY_BATCH = 256


class DamagedBuildError(UserError):
  """A prepared folder fails the completeness check; nothing was deleted."""


def damaged_build_error(name: str, config: str, data_dir: epath.Path,
                        root: epath.Path, reason: str) -> DamagedBuildError:
  """The one-line error for a damaged folder, with the rebuild command.

  Args:
    name: the dataset name (`3dpain`).
    config: the builder config's name.
    data_dir: the damaged version folder.
    root: the TFDS data_dir it lives in.
    reason: what `incomplete_reason` found.
  """
  return DamagedBuildError(
      f"{name}/{config} at {data_dir} is damaged ({reason}); nothing was "
      "deleted. Restore it from a copy, or rebuild it on purpose: `tfds "
      f"build tfds_3dpain --config {config} --data_dir {root} --overwrite` (Python: "
      "download_and_prepare(download_config=tfds.download.DownloadConfig("
      "download_mode=tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS)))"
  )


def tensorflow_available() -> bool:
  """Whether TensorFlow is installed (without importing it)."""
  return importlib.util.find_spec("tensorflow") is not None


def copy_shards(pairs: list[tuple[str, str]]) -> None:
  """Copies ArrayRecord shards to TFRecord; runs in the child process."""
  import tensorflow as tf

  for src, dst in pairs:
    with tf.io.TFRecordWriter(dst) as writer:
      for raw in _records(src):
        writer.write(raw)


def _records(path: str):
  """The serialized records of an ArrayRecord shard, read in batches."""
  reader = array_record_module.ArrayRecordReader(path)
  try:
    n = reader.num_records()
    for start in range(0, n, _COPY_BATCH):
      yield from reader.read(start, min(n, start + _COPY_BATCH))
  finally:
    reader.close()


def write_tfrecord_twin(split_infos) -> list[epath.Path]:
  """Writes a TFRecord copy of every ArrayRecord shard; returns the paths.

  Args:
    split_infos: the SplitInfos of the finished ArrayRecord build (their
      filename templates point into the folder being prepared).
  """
  pairs = []
  for split_info in split_infos:
    twin = split_info.filename_template.replace(filetype_suffix="tfrecord")
    dst_paths = sorted(twin.sharded_filepaths(split_info.num_shards))
    pairs += zip(split_info.filepaths, dst_paths, strict=True)
  pairs = [(str(a), str(b)) for a, b in pairs]
  if "tensorflow" in sys.modules:  # Already here: nothing left to protect.
    copy_shards(pairs)
    return [epath.Path(b) for _, b in pairs]
  ctx = multiprocessing.get_context("spawn")
  with runner.main_hidden():
    pool = ctx.Pool(1)
  try:
    pool.apply(copy_shards, (pairs,))
  finally:
    pool.terminate()
    pool.join()
  return [epath.Path(b) for _, b in pairs]


def write_marker(data_dir: epath.Path) -> None:
  """Lists every file now in data_dir with its size (call last)."""
  data_dir = epath.Path(data_dir)
  files = {
      p.name: p.stat().length
      for p in sorted(data_dir.iterdir())
      if p.is_file() and p.name != MARKER
  }
  tmp = data_dir / f"{MARKER}.tmp"
  tmp.write_text(json.dumps({"files": files}, indent=1, sort_keys=True))
  tmp.rename(data_dir / MARKER)


def incomplete_reason(data_dir: epath.Path) -> str | None:
  """None if data_dir is a complete build (or absent), else what is wrong."""
  data_dir = epath.Path(data_dir)
  if not data_dir.exists():
    return None
  marker = data_dir / MARKER
  if not marker.exists():
    return f"{MARKER} is missing (the build that wrote it did not finish)"
  try:
    listed = json.loads(marker.read_text())["files"]
  except (ValueError, KeyError, TypeError):
    return f"{MARKER} is unreadable"
  problems = [f"{n} missing" for n in TFDS_FILES if not (data_dir / n).exists()]
  for name, size in sorted(listed.items()):
    path = data_dir / name
    if not path.exists():
      problems.append(f"{name} missing")
    elif path.stat().length != size:
      problems.append(f"{name} has {path.stat().length} bytes, not {size}")
  if problems:
    more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
    return "; ".join(problems[:5]) + more
  return None


def rewrite_uncompressed(paths) -> None:
  """Rewrites ArrayRecord shards in place without compression.

  TFDS writes zstd-compressed shards; for raw pixels, decompressing costs
  more CPU per record than decoding a JPEG, so raw layouts store them
  plain. The records (and so every reader) are unchanged; each shard is
  written next to itself and renamed over it (the build folder is TFDS's
  temporary one, so a failure leaves no half-written dataset).
  """
  for path in paths:
    src, tmp = str(path), f"{path}.uncompressed"
    writer = array_record_module.ArrayRecordWriter(
        tmp, "group_size:1,uncompressed")
    try:
      for raw in _records(src):
        writer.write(raw)
    finally:
      writer.close()
    epath.Path(tmp).replace(src)
