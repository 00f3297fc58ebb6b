"""`3dpain/tiny` end to end: the CLI, a fresh process, random access, tf.data,
TFDS's own builder checks and the Beam DirectRunner.

One `tfds build` (module fixture) serves every reader here: synthesis is the
slow part (each new rendering process loads the head model once).
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfds_3dpain
from synth import records
from tests.limits import HANG_S

REPO = pathlib.Path(tfds_3dpain.__file__).resolve().parents[1]
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
  EXAMPLE_DIR = str(REPO / "tfds_3dpain")


def _run(args, cwd, **env):
  """Runs a fresh interpreter in cwd; returns its stdout, fails loudly."""
  proc = subprocess.run(
      args, cwd=cwd, capture_output=True, text=True, timeout=HANG_S,
      env={**os.environ, **env},
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """`tfds build <repo>/tfds_3dpain --config tiny`, run from elsewhere."""
  out = tmp_path_factory.mktemp("tiny_data")
  _run([sys.executable, "-m", "tensorflow_datasets.scripts.cli.main", "build",
        str(REPO / "tfds_3dpain"), "--config", "tiny", "--data_dir", str(out)],
       cwd=tmp_path_factory.mktemp("elsewhere"))
  return str(out)


def test_cli_build_is_complete(data_dir):
  builder = tfds.builder("3dpain/tiny", data_dir=data_dir)
  assert builder.is_prepared()
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
      "train": 33, "validation": 33, "test": 33}
  assert builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD
  assert tfds.core.FileFormat.TFRECORD in builder.info.alternative_file_formats
  assert builder.info.metadata["synth_config"]["resolution"] == 48


FRESH = textwrap.dedent("""
    import json, sys
    import tensorflow_datasets as tfds
    src = tfds.data_source("3dpain/tiny", data_dir=sys.argv[1], split="test")
    ds = tfds.load("3dpain/tiny", data_dir=sys.argv[1], split="test")
    print(json.dumps({
        "imported": "tfds_3dpain" in sys.modules,
        "source_keys": [src[i]["key"].decode() for i in range(len(src))],
        "load_keys": [ex["key"].decode() for ex in tfds.as_numpy(ds)],
    }))
""")


def test_fresh_process_finds_3dpain_without_importing_us(data_dir, tmp_path):
  out = json.loads(_run([sys.executable, "-c", FRESH, data_dir], cwd=tmp_path))
  assert out["imported"]  # By the .pth hook, not by the script.
  assert len(out["source_keys"]) == 33
  assert out["load_keys"] == out["source_keys"]
  # Without the hook the same lookup fails: the hook is what makes it work.
  off = subprocess.run(
      [sys.executable, "-c", FRESH, data_dir], cwd=tmp_path,
      capture_output=True, text=True, timeout=HANG_S,
      env={**os.environ, "TFDS_3DPAIN_NO_AUTOLOAD": "1"},
  )
  assert off.returncode != 0
  assert "Parsing builder name string 3dpain" in off.stderr


WHEEL_CHECK = textwrap.dedent("""
    import sys
    import tensorflow_datasets as tfds
    src = tfds.data_source("3dpain/tiny", data_dir=sys.argv[1], split="train")
    print(len(src), sys.modules["tfds_3dpain"].__file__)
""")


def test_regular_wheel_install_ships_the_hook(data_dir, tmp_path):
  # Build the wheel offline (hatchling from the dev extra) and install it,
  # without dependencies, into a fresh venv that borrows the project's
  # third-party packages through a plain path entry (which, unlike a site
  # folder, runs none of the project venv's .pth files).
  _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
        "--no-build-isolation", "-w", str(tmp_path / "dist"), str(REPO)],
       cwd=tmp_path)
  (wheel,) = (tmp_path / "dist").glob("jaxpain-*.whl")
  venv = tmp_path / "venv"
  _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
  py = venv / "bin" / "python"
  sp = pathlib.Path(_run([str(py), "-c", "import site; print("
                          "site.getsitepackages()[0])"], cwd=tmp_path).strip())
  (sp / "zz_deps.pth").write_text(
      next(p for p in sys.path if p.endswith("site-packages")) + "\n")
  _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
        "--no-deps", str(wheel)], cwd=tmp_path)
  assert (sp / "tfds_3dpain_autoload.pth").exists()
  count, module = _run([str(py), "-c", WHEEL_CHECK, data_dir],
                       cwd=tmp_path, PYTHONPATH="").split()  # not a checkout
  assert int(count) == 33
  assert pathlib.Path(module).is_relative_to(sp)  # The installed copy.


def _source(data_dir, split):
  return tfds.data_source("3dpain/tiny", data_dir=data_dir, split=split)


def test_random_access_and_the_neutral_index_agree(data_dir):
  rng = np.random.default_rng(0)
  builder = tfds.builder("3dpain/tiny", data_dir=data_dir)
  identities = []
  for split in SPLITS:
    source = _source(data_dir, split)
    idx = tfds_3dpain.neutral_index(builder, split)
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


def test_neutral_index_refuses_what_it_cannot_answer(data_dir, tmp_path):
  builder = tfds.builder("3dpain/tiny", data_dir=data_dir)
  with pytest.raises(ValueError, match="whole split name"):
    tfds_3dpain.neutral_index(builder, "train[:50%]")
  with pytest.raises(KeyError, match="no split 'extra'"):
    tfds_3dpain.neutral_index(builder, "extra")
  with pytest.raises(FileNotFoundError, match="prepare the dataset first"):
    tfds_3dpain.neutral_index(tmp_path, "train")
  idx = tfds_3dpain.neutral_index(builder.data_path, "train")
  with pytest.raises(KeyError, match="no neutral record"):
    idx.neutral(99, 0)


def test_tf_data_through_tfds_load(data_dir):
  ds = tfds.load("3dpain/tiny", data_dir=data_dir, split="train",
                 as_supervised=True, batch_size=11)
  images, pspi = next(iter(ds))
  assert tuple(images.shape) == (11, 48, 48, 3) and images.dtype.name == "uint8"
  assert tuple(pspi.shape) == (11,) and pspi.dtype.name == "float32"
  keys = [ex["key"] for ex in tfds.as_numpy(
      tfds.load("3dpain/tiny", data_dir=data_dir, split="train"))]
  source = _source(data_dir, "train")
  # Same records in the same order from the TFRecord twin and ArrayRecord.
  assert keys == [source[i]["key"] for i in range(len(source))]


def test_beam_direct_runner_writes_the_same_dataset(data_dir, tmp_path):
  beam = pytest.importorskip("apache_beam")  # The `beam` extra.
  options = beam.options.pipeline_options.PipelineOptions(
      ["--runner=DirectRunner"]
  )
  with_beam = tfds.builder("3dpain/tiny", data_dir=str(tmp_path))
  with_beam.download_and_prepare(
      download_config=tfds.download.DownloadConfig(beam_options=options)
  )
  for split in SPLITS:
    a, b = _source(data_dir, split), with_beam.as_data_source(split=split)
    first, second = a.__getitems__(range(33)), b.__getitems__(range(33))
    for ex_a, ex_b in zip(first, second, strict=True):
      for name, value in ex_a.items():
        np.testing.assert_array_equal(value, ex_b[name], err_msg=name)
  assert tfds_3dpain.neutral_index(with_beam, "test").neutrals(
      int(b[0]["identity"])).size == 3
  assert tfds.core.FileFormat.TFRECORD in with_beam.info.alternative_file_formats
