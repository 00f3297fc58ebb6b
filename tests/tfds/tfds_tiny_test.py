"""`3dpain/tiny` end to end: TFDS checks, random access, tf.data, rebuilds."""

import pathlib
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfds_3dpain
from synth import records
from tfds_3dpain import formats, index

SPLITS = ("train", "validation", "test")


class TinyBuilderTest(tfds.testing.DatasetBuilderTestCase):
  """TFDS's own builder checks: shapes, dtypes, counts, disjoint splits.

  Reads back with `as_dataset`, i.e. through the TFRecord twin.
  """

  DATASET_CLASS = tfds_3dpain.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["tiny"]
  SPLITS = {"train": 33, "validation": 33, "test": 33}
  SKIP_CHECKSUMS = True
  # Only `official` reads the manual folder; any existing folder will do.
  EXAMPLE_DIR = str(pathlib.Path(tfds_3dpain.__file__).parent)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  builder = tfds.builder(
      "3dpain/tiny", data_dir=str(tmp_path_factory.mktemp("tiny"))
  )
  builder.download_and_prepare()
  return builder


def _source(builder, split):
  return tfds.data_source(
      "3dpain/tiny", data_dir=builder.data_dir_root, split=split
  )


def test_random_access_and_the_neutral_index_agree(tiny):
  rng = np.random.default_rng(0)
  identities = []
  for split in SPLITS:
    source, idx = _source(tiny, split), tfds_3dpain.neutral_index(tiny, split)
    assert len(source) == len(idx) == 33
    order = rng.permutation(len(source)).tolist()
    batch = source.__getitems__(order)  # One batched random read.
    for pos, ex in zip(order, batch, strict=True):
      assert (ex["identity"], ex["expression"], ex["view"]) == (
          idx.identity[pos], idx.expression[pos], idx.view[pos])
      assert ex["is_neutral"] == (ex["expression"] == 0)
      assert ex["pspi"] == records.pspi(ex["au"])
      assert ex["image"].shape == (48, 48, 3)
      assert ex["heatmap"].shape == (48, 48, 1)
      assert ex["heatmap"].any() != ex["is_neutral"]
      ref = source[idx.neutral(int(ex["identity"]), int(ex["view"]))]
      assert ref["is_neutral"] and ref["view"] == ex["view"]
      np.testing.assert_array_equal(ref["image"], ex["neutral_image"])
    (identity,) = set(idx.identity.tolist())
    assert [source[p]["view"] for p in idx.neutrals(identity)] == [0, 1, 2]
    identities.append(identity)
  assert sorted(identities) == [0, 1, 2]  # One identity per split.


def test_neutral_index_refuses_what_it_cannot_answer(tiny, tmp_path):
  with pytest.raises(ValueError, match="whole split name"):
    tfds_3dpain.neutral_index(tiny, "train[:50%]")
  with pytest.raises(KeyError, match="no split 'extra'"):
    tfds_3dpain.neutral_index(tiny, "extra")
  with pytest.raises(FileNotFoundError, match="prepare the dataset first"):
    tfds_3dpain.neutral_index(tmp_path, "train")
  idx = tfds_3dpain.neutral_index(tiny.data_path, "train")
  with pytest.raises(KeyError, match="no neutral record"):
    idx.neutral(99, 0)


def test_tf_data_through_tfds_load(tiny):
  ds = tfds.load("3dpain/tiny", data_dir=tiny.data_dir_root, split="train",
                 as_supervised=True, batch_size=11)
  images, pspi = next(iter(ds))
  assert tuple(images.shape) == (11, 48, 48, 3) and images.dtype.name == "uint8"
  assert tuple(pspi.shape) == (11,)
  keys = [ex["key"] for ex in tfds.as_numpy(tfds.load(
      "3dpain/tiny", data_dir=tiny.data_dir_root, split="train"))]
  source = _source(tiny, "train")
  # Same records, same order, from the TFRecord twin and the ArrayRecord.
  assert keys == [source[i]["key"] for i in range(len(source))]


def _copy_dataset(builder, dst):
  shutil.copytree(builder.data_dir_root, dst)
  return dst / "3dpain" / "tiny" / str(builder.version)


@pytest.mark.parametrize("damage", ["truncated shard", "no marker"])
def test_incomplete_folder_is_detected_and_rebuilt(tiny, tmp_path, damage):
  version_dir = _copy_dataset(tiny, tmp_path / "data")
  shard = version_dir / "3dpain-train.array_record-00000-of-00001"
  original = shard.read_bytes()
  if damage == "truncated shard":
    shard.write_bytes(original[: len(original) // 2])
  else:
    (version_dir / formats.MARKER).unlink()
  assert formats.incomplete_reason(version_dir) is not None

  builder = tfds.builder("3dpain/tiny", data_dir=str(tmp_path / "data"))
  assert not version_dir.exists() and not builder.is_prepared()
  builder.download_and_prepare()
  assert formats.incomplete_reason(version_dir) is None
  assert shard.read_bytes() == original  # Deterministic rebuild.


def test_interrupted_build_is_never_read_as_complete(tmp_path, monkeypatch):
  data_dir = tmp_path / "data"
  stale = data_dir / "3dpain" / "tiny" / "incomplete.ABC123_1.0.0"
  stale.mkdir(parents=True)  # What a killed build leaves behind.
  (stale / "3dpain-train.array_record-00000-of-00001").write_bytes(b"x")

  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt("simulated interruption after the shards")

  monkeypatch.setattr(index, "build", interrupted)
  builder = tfds.builder("3dpain/tiny", data_dir=str(data_dir))
  with pytest.raises(KeyboardInterrupt):
    builder.download_and_prepare()
  assert not builder.data_path.exists() and not builder.is_prepared()
  with pytest.raises(KeyError, match="not been generated"):
    tfds.data_source("3dpain/tiny", data_dir=str(data_dir), split="train",
                     download=False)
