"""Pieces of the `3dpain` builder that need no generation: splits, encoding,
configs, the record index, the completeness marker, the install hook."""

import io
import json
import os
import pathlib
import site
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import tfds_3dpain
from synth import records
from tests.limits import HANG_S
from tfds_3dpain import configs, features, formats, index, runner, splits

REPO = pathlib.Path(tfds_3dpain.__file__).resolve().parents[1]


def test_splits_are_by_identity_deterministic_and_70_20_10():
  full = splits.assign(list(range(2500)), configs.SPLIT_SALT)
  assert full == splits.assign(list(range(2500))[::-1], configs.SPLIT_SALT)
  ids = [set(full[s]) for s in splits.SPLITS]
  assert sum(map(len, ids)) == len(set().union(*ids)) == 2500
  for part, fraction in zip(ids, splits.FRACTIONS, strict=True):
    assert abs(len(part) / 2500 - fraction) < 0.03
  # Thresholds, not ranks: `small` is `full` restricted to its identities.
  small = splits.assign(list(range(100)), configs.SPLIT_SALT)
  for name in splits.SPLITS:
    assert set(small[name]) == set(full[name]) & set(range(100))
  assert full != splits.assign(list(range(2500)), "another salt")


@pytest.mark.parametrize("n, sizes", [(3, [1, 1, 1]), (4, [2, 1, 1]),
                                      (10, [7, 2, 1])])
def test_few_identities_still_fill_every_split(n, sizes):
  got = splits.assign(list(range(n)), configs.SPLIT_SALT)
  assert [len(got[s]) for s in splits.SPLITS] == sizes


def test_config_validation_names_the_problem():
  with pytest.raises(ValueError, match="at least 3"):
    configs.make_config("two", num_identities=2)
  with pytest.raises(ValueError, match="exactly one"):
    configs.ThreeDPainConfig(name="neither")
  with pytest.raises(ValueError, match="num_workers"):
    configs.make_config("neg", num_identities=3, num_workers=-1)
  cfg = configs.make_config("custom", num_identities=5, resolution=64)
  assert cfg.synth.resolution == 64 and "5 synthetic identities" in cfg.description
  names = [c.name for c in tfds_3dpain.Builder.BUILDER_CONFIGS]
  assert names == ["full", "small", "tiny", "demo", "official", "sequences"]


def _record(expression: int, size: int = 8) -> records.ImageRecord:
  rng = np.random.default_rng(expression)
  au = np.array([3, 1, 2, 0, 4, 1] if expression else [0] * 6, np.float32)
  return records.ImageRecord(
      key=records.identity_key(7, expression, 1), identity=7,
      expression=expression, view=1, yaw_deg=-30.0, pitch_deg=5.0,
      image=np.broadcast_to(  # Smooth, so JPEG keeps it close.
          np.linspace(0, 250, size, dtype=np.uint8)[:, None, None],
          (size, size, 3)).copy(),
      neutral_image=np.zeros((size, size, 3), np.uint8),
      heatmap=rng.integers(0, 256, (size, size, 1), dtype=np.uint8),
      au=au, pspi=float(records.pspi(au)),
      demographics=records.Demographics("old", 71.5, "male", "african",
                                        (0.8, 0.1, 0.1)),
      seed=3,
  )


def test_synthetic_example_matches_the_feature_spec_without_tensorflow():
  rec = _record(4)
  neutral = features.encode_jpeg(rec.neutral_image, 90)
  key, example = features.synthetic_example(rec, 90, neutral)
  spec = features.synthetic_features(8)
  assert key == rec.key and set(example) == set(spec.keys())
  encoded = spec.encode_example(example)  # Raises on any mismatch.
  assert encoded["neutral_image"] == neutral
  decoded = spec.deserialize_example_np(
      tfds.core.example_serializer.ExampleSerializer(
          spec.get_serialized_info()).serialize_example(encoded))
  assert decoded["ethnicity"] == records.ETHNICITIES.index("african")
  assert decoded["age_group"] == records.AGE_GROUPS.index("old")
  np.testing.assert_array_equal(decoded["heatmap"], rec.heatmap)  # Lossless.
  assert np.abs(decoded["image"].astype(int) - rec.image).mean() < 8
  assert decoded["pspi"] == rec.pspi and not decoded["is_neutral"]


def test_png_heatmap_is_single_channel_and_exact():
  heat = np.arange(64, dtype=np.uint8).reshape(8, 8, 1)
  with Image.open(io.BytesIO(features.encode_png(heat))) as img:
    assert img.mode == "L"
    np.testing.assert_array_equal(np.asarray(img)[..., None], heat)


def test_record_index_lookups():
  identity = np.array([5, 5, 2, 5, 2, 2], np.int32)
  expression = np.array([0, 3, 0, 0, 1, 0], np.int32)
  view = np.array([1, 1, 0, 0, 0, 2], np.int32)
  idx = index.RecordIndex.from_columns("x", identity, expression, view)
  assert idx.neutral(5, 1) == 0 and idx.neutral(2, 2) == 5
  assert idx.neutrals(5).tolist() == [3, 0] and idx.neutrals(2).tolist() == [2, 5]
  assert idx.records_of(2).tolist() == [2, 4, 5]
  assert idx.neutral_table[5, 2] == -1
  with pytest.raises(KeyError):
    idx.neutral(5, 2)


def test_completeness_marker_catches_missing_and_changed_files(tmp_path):
  assert formats.incomplete_reason(tmp_path / "absent") is None
  (tmp_path / "a.array_record").write_bytes(b"12345")
  (tmp_path / "b.tfrecord").write_bytes(b"123")
  assert "missing" in formats.incomplete_reason(tmp_path)  # No marker yet.
  formats.write_marker(tmp_path)
  assert "dataset_info.json missing" in formats.incomplete_reason(tmp_path)
  for name in formats.TFDS_FILES:
    (tmp_path / name).write_text("{}")
  assert formats.incomplete_reason(tmp_path) is None
  assert json.loads((tmp_path / formats.MARKER).read_text())["files"] == {
      "a.array_record": 5, "b.tfrecord": 3}
  (tmp_path / "a.array_record").write_bytes(b"12")
  (tmp_path / "b.tfrecord").unlink()
  reason = formats.incomplete_reason(tmp_path)
  assert "a.array_record has 2 bytes, not 5" in reason
  assert "b.tfrecord missing" in reason


def test_main_hidden_restores_main():
  main = sys.modules["__main__"]
  with runner.main_hidden():
    assert sys.modules["__main__"] is not main
    assert not hasattr(sys.modules["__main__"], "__file__")
  assert sys.modules["__main__"] is main


def _unit(u):
  return [(f"k{u}{i}", {"v": i}) for i in range(u)], [(f"f{u}", "note")]


def test_unit_runner_in_process_keeps_order_and_collects_notes():
  notes = []
  with runner.UnitRunner(1) as r:
    keys = [k for k, _ in r.examples(_unit, [2, 1, 3], notes)]
  assert keys == ["k20", "k21", "k10", "k30", "k31", "k32"]
  assert notes == [("f2", "note"), ("f1", "note"), ("f3", "note")]


def test_installed_hook_files_match_the_source():
  # Editable installs copy these two files: a stale copy is caught here.
  installed = [pathlib.Path(p) for p in site.getsitepackages()
               if (pathlib.Path(p) / "tfds_3dpain_autoload.pth").exists()]
  assert installed, "reinstall: pip install -e . (the .pth is missing)"
  root = installed[0]
  assert (root / "tfds_3dpain_autoload.pth").read_text().strip() == (
      "import tfds_3dpain_autoload")
  assert (root / "tfds_3dpain_autoload.py").read_bytes() == (
      REPO / "tfds_3dpain" / "_autoload.py").read_bytes()


BROKEN_TARGET = """
import sys, warnings
import tfds_3dpain_autoload as hook
hook.TARGET = "no_such_module_3dpain"
with warnings.catch_warnings(record=True) as caught:
  warnings.simplefilter("always")
  import tensorflow_datasets
print(sys.modules["tensorflow_datasets"].__name__, not hook.installed(),
      any("no_such_module_3dpain" in str(w.message) for w in caught))
"""


def test_hook_warns_but_never_breaks_tfds(tmp_path):
  out = subprocess.run([sys.executable, "-c", BROKEN_TARGET], cwd=tmp_path,
                       capture_output=True, text=True, timeout=HANG_S,
                       env={**os.environ})
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ["tensorflow_datasets", "True", "True"]
