"""Direct ArrayRecord reads (records.TfdsRecords) over every storage layout.

One small release (4 identities, 48 px smooth faces-like images) imported
by the real `official` builder in four layouts: JPEG as released, JPEG and
raw uint8 stored at 24 px, and raw with zstd shards. Checked: the pixels a
batch gets equal the reference decode (TFDS's own reader, and the release
files resized), the neutral cache changes nothing, batches resume exactly,
worker processes read the same, and a damaged shard is named, not deleted.
"""

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from jaxpain.data import pipeline, records, sources

SIDE, STORED = 48, 24
LAYOUTS = {
    "asis": dict(),
    "jpeg24": dict(size=STORED),
    "raw24": dict(size=STORED, layout="raw"),
    "rawzstd24": dict(size=STORED, layout="raw", compress=True),
}


def _smooth(name: str) -> np.ndarray:
  """A smooth RGB image (JPEG-friendly, like a face), seeded by name."""
  rng = np.random.default_rng(sum(name.encode()))
  yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
  c = rng.uniform(0.2, 0.8, (3, 3))
  img = np.stack([c[k, 0] + c[k, 1] * np.sin(3 * xx + k) * yy
                  + c[k, 2] * ((xx - .5) ** 2 + (yy - .5) ** 2 < .1)
                  for k in range(3)], -1)
  return np.clip(img * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """{layout: data_dir} of the four imports, and the release folder."""
  import tensorflow  # noqa: F401  (the TFRecord twin in-process: faster)
  import tensorflow_datasets as tfds

  import tfds_3dpain
  from tfds_3dpain import features, testing

  root = tmp_path_factory.mktemp("layouts")
  info = testing.write_official_fixture(root / "release", size=SIDE,
                                        heatmaps=False)
  for path in info.images_dir.iterdir():
    Image.fromarray(_smooth(path.name)).save(str(path), quality=95)
  dirs = {}
  for layout, kw in LAYOUTS.items():
    cfg = tfds_3dpain.ThreeDPainConfig(
        name=f"rec_{layout}", official=True, num_workers=0,
        storage=features.ImageStorage(**kw))
    builder = tfds.builder("3dpain", config=cfg, data_dir=str(root / "d"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(info.root)))
    dirs[layout] = str(root / "d")
  return dirs, info


def _open(built, layout):
  dirs, _ = built
  name = f"3dpain/rec_{layout}"
  src = sources.open_source(name, "train", dirs[layout])
  return src, sources.split_index(src, name, "train", dirs[layout])


def _batches(src, index, sharding, n=2, **kw):
  spec = pipeline.InputSpec(**{"fields": ("image", "neutral"), **kw})
  it = iter(pipeline.train_dataset(src, index, spec, 8, sharding))
  return [next(it) for _ in range(n)]


def _release_pixels(info, key: str, size: int) -> np.ndarray:
  with Image.open(info.images_dir / f"{key}.jpg") as im:
    im = im.convert("RGB")
    if size != SIDE:
      im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im).astype(np.int16)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_layout_gives_the_reference_pixels(built, sharding, layout):
  import tensorflow_datasets as tfds

  src, index = _open(built, layout)
  assert isinstance(src, records.TfdsRecords)
  ref = tfds.data_source(f"3dpain/rec_{layout}", split="train",
                         data_dir=built[0][layout])
  (b,) = _batches(src, index, sharding, n=1)
  size = SIDE if layout == "asis" else STORED
  assert b["image"].shape == (8, size, size, 3)
  for row, rid in enumerate(b["record"]):
    want = ref[int(rid)]
    for field, feature in (("image", "image"), ("neutral", "neutral_image")):
      got = b[field][row].astype(np.int16)
      # TFDS's reader (Pillow) and ours (simplejpeg) decode alike.
      assert np.abs(got - want[feature]).max() <= 1
    assert b["pspi"][row] == want["pspi"]
    # Against the release file itself: exact for raw, JPEG error otherwise.
    orig = _release_pixels(built[1], want["key"].decode(), size)
    err = np.abs(b["image"][row].astype(np.int16) - orig)
    # (4:2:0 chroma at 24 px: a few levels)
    assert err.mean() <= (0.01 if layout.startswith("raw") else 3.0)


def test_dct_scaled_decode_matches_a_resize():
  img = _smooth("dct")
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, format="JPEG", quality=95)
  enc = records.Encoded("jpeg", buf.getvalue(), 3)
  assert records.decode(enc, 3).shape == (SIDE, SIDE, 3)
  half = records.decode(enc, 3, target=SIDE // 2)  # 1/2 in the DCT domain
  assert half.shape == (SIDE // 2, SIDE // 2, 3)
  want = np.asarray(Image.fromarray(img).resize(
      (SIDE // 2, SIDE // 2), Image.Resampling.BILINEAR)).astype(np.int16)
  assert np.abs(half.astype(np.int16) - want).mean() <= 2.0
  out = np.zeros((SIDE // 4, SIDE // 4, 3), np.uint8)
  assert records.decode(enc, 3, out=out, target=SIDE // 4) is out
  assert out.any()
  assert [records.jpeg_scale(256, t) for t in (256, 224, 128, 100, 64, 16)] \
      == [1, 1, 2, 2, 4, 8]
  assert records.jpeg_scale(256, None) == 1


@pytest.mark.parametrize("mode", ["same_view", "random_view"])
def test_the_neutral_cache_changes_nothing(built, sharding, mode):
  src, index = _open(built, "jpeg24")
  cached = _batches(src, index, sharding, n=3, neutral_mode=mode)
  plain = _batches(src, index, sharding, n=3, neutral_mode=mode,
                   neutral_cache_mb=0)
  for a, b in zip(cached, plain, strict=True):
    np.testing.assert_array_equal(a["neutral"], b["neutral"])
    np.testing.assert_array_equal(a["record"], b["record"])


def test_resume_and_workers_give_the_same_batches(built, sharding):
  src, index = _open(built, "raw24")
  spec = pipeline.InputSpec(fields=("image", "neutral"),
                            neutral_mode="random_view")
  ds = pipeline.train_dataset(src, index, spec, 8, sharding)
  it = iter(ds)
  for _ in range(2):
    next(it)
  saved = it.get_state()
  want = [next(it) for _ in range(2)]
  fresh = iter(ds)
  fresh.set_state(saved)
  workers = iter(pipeline.train_dataset(src, index, spec, 8, sharding,
                                        num_workers=1))
  for _ in range(2):
    next(workers)
  for w in want:  # resumed in-process, and a pickled source in a worker
    for other in (next(fresh), next(workers)):
      for key in ("record", "image", "neutral"):
        np.testing.assert_array_equal(other[key], w[key])


def _damage_and_read(built, tmp_path, damage):
  """Copies the jpeg24 build, opens it, damages its train shard, reads."""
  dirs, _ = built
  data_dir = tmp_path / "copy"
  shutil.copytree(dirs["jpeg24"], data_dir)
  src = sources.open_source("3dpain/rec_jpeg24", "train", str(data_dir))
  (shard,) = [s.path for s in src._shards]
  damage(shard)
  with pytest.raises(records.RecordError) as err:
    for i in range(len(src)):
      src.fields(i, ("image",))
  assert os.path.exists(shard)  # nothing deleted by a read
  return str(err.value), shard


def test_a_corrupt_record_is_named(built, tmp_path):
  def rot(path):  # 4 KiB of bit rot among the records (the shard's tail
    with open(path, "r+b") as f:  # is padding and footer)
      f.seek(os.path.getsize(path) // 4)
      f.write(os.urandom(4096))

  msg, shard = _damage_and_read(built, tmp_path, rot)
  assert "3dpain/rec_jpeg24" in msg and shard in msg
  assert "record " in msg and "--overwrite" in msg and "\n" not in msg


def test_a_truncated_shard_is_named(built, tmp_path):
  def cut(path):
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)

  msg, shard = _damage_and_read(built, tmp_path, cut)
  assert shard in msg and "truncated" in msg and "record 0 of" in msg


def test_storage_options_are_checked():
  from tfds_3dpain import features

  with pytest.raises(ValueError, match="layout"):
    features.ImageStorage(layout="png")
  with pytest.raises(ValueError, match="stored size"):
    features.official_features(features.ImageStorage(layout="raw"))
  assert features.ImageStorage().is_default()
  assert not features.ImageStorage(layout="raw").compressed
