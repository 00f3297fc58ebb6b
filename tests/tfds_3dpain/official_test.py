"""`3dpain/official`: the import of the released layout, and its bad inputs."""

import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import tfds_3dpain
from tests.limits import HANG_S
from tfds_3dpain import formats, index, testing


class OfficialBuilderTest(tfds.testing.DatasetBuilderTestCase):
  """TFDS's own builder checks on a fake release (4 identities, CSV split)."""

  DATASET_CLASS = tfds_3dpain.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["official"]
  SPLITS = {"train": 66, "validation": 33, "test": 33}
  SKIP_CHECKSUMS = True

  @classmethod
  def setUpClass(cls):
    cls._release = tempfile.mkdtemp(prefix="3dpain_release_")
    testing.write_official_fixture(cls._release)
    cls.EXAMPLE_DIR = cls._release
    super().setUpClass()

  @classmethod
  def tearDownClass(cls):
    super().tearDownClass()
    shutil.rmtree(cls._release, ignore_errors=True)


def _by_key(builder, split):
  source = builder.as_data_source(split=split)
  return {ex["key"].decode(): ex for ex in (source[i] for i in range(len(source)))}


def test_labels_and_neutral_pairs_match_the_files(
    official_fixture, prepare_official, tmp_path
):
  builder = prepare_official(official_fixture.root, tmp_path)
  seen = set()
  for split, size in official_fixture.split_sizes.items():
    examples = _by_key(builder, split)
    assert len(examples) == size
    idx, source = tfds_3dpain.neutral_index(builder, split), (
        builder.as_data_source(split=split))
    for pos in range(len(source)):
      ex = source[pos]
      ref = source[idx.neutral(int(ex["identity"]), int(ex["view"]))]
      assert ref["key"].decode() == testing.image_name(
          int(ex["identity"]), 0, int(ex["view"]))[: -len(".jpg")]
    identities = {int(ex["identity"]) for ex in examples.values()}
    assert not identities & seen, "an identity is in two splits"
    seen |= identities
    for key, ex in examples.items():
      identity, expr, view = int(ex["identity"]), int(ex["expression"]), int(ex["view"])
      assert key == testing.image_name(identity, expr, view)[: -len(".jpg")]
      neutral = examples[testing.image_name(identity, 0, view)[: -len(".jpg")]]
      np.testing.assert_array_equal(ex["neutral_image"], neutral["image"])
      if expr == 0:
        assert ex["is_neutral"] and ex["pspi"] == 0 and not ex["heatmap"].any()
        continue
      au, pspi = official_fixture.labels[(identity, expr)]
      np.testing.assert_array_equal(ex["au"], au)
      assert ex["pspi"] == pspi and not ex["is_neutral"]
  # CSV: identities 0, 1 train; 2 validation; 3 test.
  assert builder.info.metadata["split_source"].startswith("released split")
  assert builder.info.metadata["skipped_files"] == []


def test_missing_manual_dir_says_where_and_what(prepare_official, tmp_path):
  with pytest.raises(tfds_3dpain.ManualDirError) as err:
    prepare_official(tmp_path / "absent", tmp_path / "data")
  msg = str(err.value)
  assert str(tmp_path / "absent") in msg and "does not exist" in msg
  assert "pain_faces/meshes_inpainted" in msg  # The instructions.


def test_wrong_layout_lists_missing_folders(prepare_official, tmp_path):
  manual = tmp_path / "manual"
  (manual / "images").mkdir(parents=True)
  (manual / "labels.json").write_text("{}")
  with pytest.raises(tfds_3dpain.ManualDirError) as err:
    prepare_official(manual, tmp_path / "data")
  msg = str(err.value)
  for expected in ("pain_faces/annotations", "pain_faces/meshes_inpainted",
                   "images", "labels.json"):
    assert expected in msg
  assert not (tmp_path / "data" / "3dpain" / "official").exists() or not any(
      (tmp_path / "data" / "3dpain" / "official").glob("1.0.0"))


def _truncate(path):
  path.write_bytes(path.read_bytes()[:40])


def test_corrupt_files_are_reported_and_skipped(
    release_copy, prepare_official, tmp_path
):
  images = release_copy / "pain_faces" / "meshes_inpainted"
  bad_pain = testing.image_name(0, 3, 1)
  bad_neutral = testing.image_name(1, 0, 2)
  _truncate(images / bad_pain)
  _truncate(images / bad_neutral)
  heat = release_copy / "pain_faces" / "heatmaps" / "flame_sample_0002_pain_5_heatmap.png"
  heat.write_bytes(b"not a png")
  builder = prepare_official(release_copy, tmp_path / "data")

  skipped = builder.info.metadata["skipped_files"]
  names = {s.split(":")[0] for s in skipped}
  assert bad_pain in names and bad_neutral in names and heat.name in names
  # Identity 1 view 2 loses its neutral and the 10 pain images needing it;
  # identity 2 pain 5 loses its 3 views with its heatmap.
  assert len(skipped) == 1 + 11 + 1 + 3
  train, val = _by_key(builder, "train"), _by_key(builder, "validation")
  assert len(train) == 66 - 1 - 11 and len(val) == 33 - 3
  assert bad_pain[:-4] not in train
  assert not any(
      ex["identity"] == 1 and ex["view"] == 2 for ex in train.values())
  assert not any(ex["expression"] == 5 for ex in val.values())


def test_bad_annotation_skips_its_images(release_copy, prepare_official, tmp_path):
  ann = release_copy / "pain_faces" / "annotations"
  (ann / "flame_sample_0003_pain_4_annotations.json").write_text(
      '{"AU4": 9, "AU6": 0, "AU7": 0, "AU9": 0, "AU10": 0, "AU43": 0, "PSPI": 9}')
  (ann / "flame_sample_0003_pain_7_annotations.json").write_text("{broken")
  builder = prepare_official(release_copy, tmp_path / "data")
  test = _by_key(builder, "test")
  assert len(test) == 33 - 2 * 3
  assert not {int(ex["expression"]) for ex in test.values()} & {4, 7}
  skipped = " ".join(builder.info.metadata["skipped_files"])
  assert "AU4=9" in skipped and "unreadable annotation JSON" in skipped


def test_bad_labels_and_images_are_named_and_skipped_at_build(
    release_copy, prepare_official, tmp_path
):
  ann = release_copy / "pain_faces" / "annotations"
  labels = {"AU4": 1, "AU6": 0, "AU7": 0, "AU9": 0, "AU10": 0, "AU43": 0,
            "PSPI": 1}
  (ann / "flame_sample_0003_pain_4_annotations.json").write_text(
      json.dumps({**labels, "AU43": 0.5}))
  (ann / "flame_sample_0003_pain_5_annotations.json").write_text(
      json.dumps({**labels, "AU6": float("nan")}))
  images = release_copy / "pain_faces" / "meshes_inpainted"
  big = testing.image_name(0, 3, 1)
  Image.new("RGB", (24, 24)).save(images / big, format="JPEG")
  text = testing.image_name(1, 2, 0)
  (images / text).write_text("not an image at all")

  builder = prepare_official(release_copy, tmp_path / "data")
  skipped = dict(s.split(": ", 1) for s in
                 builder.info.metadata["skipped_files"])
  assert "AU43=0.5 must be 0 or 1" in skipped[
      "flame_sample_0003_pain_4_annotations.json"]
  assert "AU6=nan is outside" in skipped[
      "flame_sample_0003_pain_5_annotations.json"]
  assert skipped[big].startswith("image is 24x24 but the release's images "
                                 "are 16x16; skipped")
  assert skipped[text].startswith("not an image")
  train, test = _by_key(builder, "train"), _by_key(builder, "test")
  assert len(train) == 66 - 2 and len(test) == 33 - 2 * 3
  assert {ex["image"].shape for ex in train.values()} == {(16, 16, 3)}


def test_identity_missing_from_the_split_csv_is_named_and_skipped(
    release_copy, prepare_official, tmp_path
):
  csv = release_copy / "uniform_data_70_20_10_split.csv"
  rows = [r for r in csv.read_text().splitlines()
          if not r.startswith("flame_sample_0002_")]
  csv.write_text("\n".join([*rows, "flame_sample_0042_pain_1,0"]) + "\n")
  builder = prepare_official(release_copy, tmp_path / "data")
  skipped = builder.info.metadata["skipped_files"]
  assert ("flame_sample_0002: identity not in uniform_data_70_20_10_split.csv"
          "; all its images skipped") in " ".join(skipped)
  assert any("1 rows name annotations that are not in the folder, e.g. "
             "['flame_sample_0042_pain_1']" in s for s in skipped)
  assert "validation" not in builder.info.splits  # its only identity left
  assert builder.info.splits["train"].num_examples == 66


def test_without_split_csv_identities_are_split_by_hash(
    release_copy, prepare_official, tmp_path
):
  (release_copy / "uniform_data_70_20_10_split.csv").unlink()
  builder = prepare_official(release_copy, tmp_path / "data")
  assert "hash" in builder.info.metadata["split_source"]
  sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
  assert sizes == {"train": 66, "validation": 33, "test": 33}
  per_split = [{int(e["identity"]) for e in _by_key(builder, s).values()}
               for s in sizes]
  assert sum(len(s) for s in per_split) == len(set().union(*per_split)) == 4


def test_csv_with_identity_in_two_splits_is_refused(
    release_copy, prepare_official, tmp_path
):
  csv = release_copy / "uniform_data_70_20_10_split.csv"
  csv.write_text(csv.read_text().replace("flame_sample_0000_pain_2,0",
                                         "flame_sample_0000_pain_2,2"))
  with pytest.raises(tfds_3dpain.ManualDirError, match="several splits"):
    prepare_official(release_copy, tmp_path / "data")


def _tree(folder):
  """{relative path: bytes} of every file under folder."""
  folder = pathlib.Path(folder)
  return {str(p.relative_to(folder)): p.read_bytes()
          for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", ["truncated shard", "no marker"])
def test_damaged_folder_is_never_deleted_and_rebuilt_only_on_request(
    official_fixture, prepare_official, official_local, tmp_path, damage
):
  data_dir = tmp_path / "data"
  version_dir = prepare_official(official_fixture.root, data_dir).data_path
  shard = version_dir / "3dpain-train.array_record-00000-of-00001"
  original = shard.read_bytes()
  # What an interrupted copy or a non-atomic rename (object stores) leaves.
  if damage == "truncated shard":
    shard.write_bytes(original[: len(original) // 2])
  else:
    (version_dir / formats.MARKER).unlink()
  damaged = _tree(version_dir)

  reads = {
      "data_source": lambda: tfds.data_source(
          "3dpain", split="train", data_dir=str(data_dir),
          download=False, builder_kwargs={"config": official_local}),
      "as_data_source": lambda: tfds.builder(
          "3dpain", config=official_local, data_dir=str(data_dir)
      ).as_data_source(split="train"),
      "prepare": lambda: prepare_official(official_fixture.root, data_dir),
  }
  for what, read in reads.items():
    with pytest.raises(formats.DamagedBuildError) as e:
      read()
    message = str(e.value)
    assert "\n" not in message and "nothing was deleted" in message, what
    assert "--overwrite" in message and str(version_dir) in message, what
    assert _tree(version_dir) == damaged, f"{what} changed the folder"

  rebuilt = prepare_official(official_fixture.root, data_dir,
                             download_mode=tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS)
  assert rebuilt.is_prepared()
  assert formats.incomplete_reason(version_dir) is None
  assert shard.read_bytes() == original  # Deterministic rebuild.


def test_interrupted_build_is_never_read_as_complete(
    official_fixture, prepare_official, official_local, tmp_path, monkeypatch
):
  data_dir = tmp_path / "data"
  parent = data_dir / "3dpain" / "official_local"
  stale = parent / "incomplete.ABC123_1.0.0"
  stale.mkdir(parents=True)  # What a killed build leaves behind.
  (stale / "3dpain-train.array_record-00000-of-00001").write_bytes(b"x")

  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt("simulated interruption after the shards")

  monkeypatch.setattr(index, "build", interrupted)
  with pytest.raises(KeyboardInterrupt):
    prepare_official(official_fixture.root, data_dir)
  assert not (parent / "1.0.0").exists()
  builder = tfds.builder(
      "3dpain", config=official_local, data_dir=str(data_dir)
  )
  assert not builder.is_prepared()
  with pytest.raises(KeyError, match="not been generated"):
    builder.as_data_source(split="train")
  monkeypatch.undo()
  assert prepare_official(official_fixture.root, data_dir).is_prepared()


KEEPS_TF_OUT = """
import sys
import tensorflow_datasets as tfds
import tfds_3dpain
cfg = tfds_3dpain.ThreeDPainConfig(name="o", official=True, num_workers=0)
b = tfds.builder("3dpain", config=cfg, data_dir=sys.argv[2])
b.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=sys.argv[1]))
print("tensorflow" in sys.modules, [f.value for f in b.info.alternative_file_formats])
"""


def test_building_never_imports_tensorflow_into_the_caller(
    official_fixture, tmp_path
):
  # TensorFlow then torchvision (or pyrender) crashes a process; the
  # TFRecord twin is written by a child so a JAX job can build safely.
  out = subprocess.run(
      [sys.executable, "-c", KEEPS_TF_OUT, str(official_fixture.root),
       str(tmp_path)], capture_output=True, text=True, timeout=HANG_S)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split("\n")[-2] == "False ['tfrecord']"


def _tfds_build(*args):
  """`tfds build <repo>/tfds_3dpain ...` as a user runs it."""
  repo = pathlib.Path(tfds_3dpain.__file__).parent
  return subprocess.run(
      [sys.executable, "-m", "tensorflow_datasets.scripts.cli.main", "build",
       str(repo), *args], capture_output=True, text=True, timeout=HANG_S)


@pytest.mark.parametrize("case", ["damaged build", "no manual folder"])
def test_tfds_build_answers_bad_input_without_traceback(case, damaged_3dpain,
                                                        tmp_path):
  data_dir, version, files = damaged_3dpain
  if case == "damaged build":
    proc = _tfds_build("--config", "official", "--data_dir", data_dir)
    expected = "is damaged"
  else:
    proc = _tfds_build("--config", "official", "--data_dir",
                       str(tmp_path / "data"), "--manual_dir",
                       str(tmp_path / "nothing_here"))
    expected = "nothing_here does not exist or is empty"
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  (line,) = [x for x in proc.stderr.splitlines() if expected in x]
  assert "nothing was deleted" in line or case != "damaged build"
  assert {p.name: p.read_bytes() for p in version.iterdir()} == files
  assert not (tmp_path / "data" / "3dpain" / "official" / "1.0.0").exists()

