"""Feature spec of `3dpain` and the encoding of one example, without TensorFlow.

TFDS encodes numpy images with `tf.image.encode_*`, which needs TensorFlow
(stack.md §5). We hand it JPEG / PNG bytes encoded with Pillow instead, which
TFDS stores as they are, so preparing the ArrayRecord files works in a
TF-free environment and in Beam workers alike.

One function per source turns a unit of work into examples: `synthetic_
example(record)` for a `synth.records.ImageRecord`. The official import
builds its dicts in `official.py` with the same keys minus the synthesis-only
labels (camera angles, demographics).

`ImageStorage` says how the images are stored, so that training reads what
it needs and nothing more (docs/dataset.md, "Storage"): at a given side
(e.g. the training resolution, 224, instead of the rendered 256) and as JPEG
(PNG for the heatmap) or raw uint8. Raw images are a `Tensor` feature of
bytes: no decode at all, at the price of size on disk. Raw shards are
written uncompressed by default: zstd on raw pixels costs more to read back
than decoding a JPEG of the same image (docs/benchmarks.md §3).
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from synth import records

AU_DOC = (
    "AU intensities in the order "
    + ", ".join(records.AU_NAMES)
    + " (AU4..AU10: integers 0-5; AU43 eyes closed: 0 or 1), as float32"
)
# Heatmaps are small and smooth: fast zlib level, lossless.
PNG_COMPRESS_LEVEL = 1
LAYOUTS = ("jpeg", "raw")
# Quality of JPEGs this module encodes from decoded pixels (a resized or
# re-encoded image of the official import).
REENCODE_QUALITY = 95


@dataclasses.dataclass(frozen=True)
class ImageStorage:
  """How a config stores its images (every image feature alike).

  Attributes:
    size: stored side in pixels (images are resized, antialiased bilinear,
      like the trainer's on-device resize); None keeps the rendered or
      released size.
    layout: 'jpeg' (colour JPEG, heatmap PNG) or 'raw' (uint8 bytes).
    compress: zstd-compress the ArrayRecord shards (TFDS's default); None
      picks by layout: yes for JPEG (no cost, nothing to gain either), no
      for raw (zstd's decompression costs more than a JPEG decode).
  """

  size: int | None = None
  layout: str = "jpeg"
  compress: bool | None = None

  def __post_init__(self):
    if self.layout not in LAYOUTS:
      raise ValueError(f"image layout {self.layout!r} not in {LAYOUTS}")
    if self.size is not None and not 8 <= self.size <= 4096:
      raise ValueError(f"stored image size must be 8..4096, got {self.size}")

  @property
  def compressed(self) -> bool:
    """Whether the shards are zstd-compressed (see `compress`)."""
    return self.layout == "jpeg" if self.compress is None else self.compress

  def is_default(self) -> bool:
    """JPEG at the source size, compressed: what the builder always wrote."""
    return self.size is None and self.layout == "jpeg" and self.compressed

  def to_dict(self) -> dict:
    return {"size": self.size, "layout": self.layout,
            "compressed": self.compressed}

  def rgb(self, image: np.ndarray, quality: int = REENCODE_QUALITY):
    """The stored value of an RGB image: JPEG bytes or a uint8 array."""
    image = _resized(np.asarray(image, np.uint8), self.size)
    return image if self.layout == "raw" else encode_jpeg(image, quality)

  def rgb_from_jpeg(self, data: bytes):
    """The stored value of a JPEG file; its bytes when they can be kept."""
    if self.layout == "jpeg" and self.size is None:
      return data
    with Image.open(io.BytesIO(data)) as im:
      return self.rgb(np.asarray(im.convert("RGB")))

  def gray(self, image: np.ndarray):
    """The stored value of a one-channel map: PNG bytes or (H, W, 1) uint8."""
    arr = np.asarray(image, np.uint8)
    arr = _resized(arr[..., 0] if arr.ndim == 3 else arr, self.size)
    return arr[..., None] if self.layout == "raw" else encode_png(arr)


DEFAULT_STORAGE = ImageStorage()


def _resized(image: np.ndarray, size: int | None) -> np.ndarray:
  if size is None or image.shape[:2] == (size, size):
    return image
  mode = "RGB" if image.ndim == 3 else "L"
  out = Image.fromarray(image, mode).resize(
      (size, size), Image.Resampling.BILINEAR)
  return np.asarray(out)


def _image(shape, fmt: str, doc: str, layout: str = "jpeg"):
  if layout == "raw":
    return tfds.features.Tensor(
        shape=shape, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES,
        doc=doc + " Raw uint8.")
  return tfds.features.Image(shape=shape, encoding_format=fmt, doc=doc)


def _scalar(dtype, doc: str) -> tfds.features.Scalar:
  return tfds.features.Scalar(dtype=dtype, doc=doc)


def common_features(
    resolution: int | None, storage: ImageStorage = DEFAULT_STORAGE
) -> dict[str, tfds.features.FeatureConnector]:
  """Features shared by synthetic and official configs."""
  side = storage.size or resolution
  rgb, gray = (side, side, 3), (side, side, 1)
  layout = storage.layout
  return {
      "image": _image(rgb, "jpeg", "The face image (pain or neutral).",
                      layout),
      "neutral_image": _image(
          rgb,
          "jpeg",
          "The neutral expression of the same identity from the same view "
          "(equal to `image` for neutral examples).",
          layout,
      ),
      "heatmap": _image(
          gray,
          "png",
          "Pain-region map, one channel: per-vertex displacement from the "
          "neutral mesh, rendered frontally; all zero for neutral examples.",
          layout,
      ),
      "au": tfds.features.Tensor(shape=(6,), dtype=np.float32, doc=AU_DOC),
      "pspi": _scalar(
          np.float32,
          "PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43, in [0, 16].",
      ),
      "identity": _scalar(np.int32, "Identity index."),
      "expression": _scalar(
          np.int32, "0 for the neutral expression, 1..10 for pain expressions."
      ),
      "view": _scalar(np.int32, "Camera index; 0 is the frontal view."),
      "is_neutral": _scalar(np.bool_, "True for the neutral expression."),
      "key": tfds.features.Text(
          doc="Stable example key (synthetic: id#####_expr##_view#; "
          "official: the source image file stem)."
      ),
  }


def synthetic_features(
    resolution: int, storage: ImageStorage = DEFAULT_STORAGE
) -> tfds.features.FeaturesDict:
  """The full feature set of the generated configs."""
  feats = common_features(resolution, storage)
  feats.update(
      yaw=_scalar(np.float32, "Camera yaw in degrees (> 0: subject's left)."),
      pitch=_scalar(np.float32, "Camera pitch in degrees (> 0: from above)."),
      age_group=tfds.features.ClassLabel(
          names=list(records.AGE_GROUPS), doc="Age bin of the identity."
      ),
      age_years=_scalar(np.float32, "Sampled age in years."),
      gender=tfds.features.ClassLabel(
          names=list(records.GENDERS), doc="Gender of the identity."
      ),
      ethnicity=tfds.features.ClassLabel(
          names=list(records.ETHNICITIES),
          doc="Dominant ethnicity of the identity's MakeHuman macro mix.",
      ),
      ethnicity_mix=tfds.features.Tensor(
          shape=(len(records.ETHNICITIES),),
          dtype=np.float32,
          doc="Weights over " + ", ".join(records.ETHNICITIES) + " (sum 1).",
      ),
  )
  return tfds.features.FeaturesDict(feats)


def official_features(
    storage: ImageStorage = DEFAULT_STORAGE,
) -> tfds.features.FeaturesDict:
  """Features of the official import: the released labels only."""
  if storage.layout == "raw" and storage.size is None:
    raise ValueError(
        "the official import keeps the released image sizes, which differ: "
        "the raw layout needs a stored size (ImageStorage(size=...))")
  return tfds.features.FeaturesDict(common_features(None, storage))


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
  """RGB uint8 (H, W, 3) -> baseline JPEG bytes (4:2:0, optimised tables)."""
  buf = io.BytesIO()
  Image.fromarray(np.asarray(image, np.uint8), "RGB").save(
      buf, format="JPEG", quality=quality, optimize=True
  )
  return buf.getvalue()


def encode_png(gray: np.ndarray) -> bytes:
  """uint8 (H, W) or (H, W, 1) -> single-channel PNG bytes."""
  arr = np.asarray(gray, np.uint8)
  if arr.ndim == 3:
    arr = arr[..., 0]
  buf = io.BytesIO()
  Image.fromarray(arr, "L").save(
      buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL
  )
  return buf.getvalue()


def synthetic_example(
    record: records.ImageRecord, jpeg_quality: int, neutral_jpeg,
    storage: ImageStorage = DEFAULT_STORAGE,
) -> tuple[str, dict]:
  """(key, example dict) for one generated image, images as stored.

  Args:
    record: the generated image and its labels.
    jpeg_quality: JPEG quality of `image`.
    neutral_jpeg: the stored neutral image of the same identity and view
      (`storage.rgb` of it); passed in so that it is encoded once per view,
      and so that a neutral example's `image` and every `neutral_image` of
      that view are the same bytes.
    storage: how images are stored.
  """
  demo = record.demographics
  image = neutral_jpeg if record.is_neutral else storage.rgb(
      record.image, jpeg_quality
  )
  neutral = neutral_jpeg
  return record.key, {
      "image": image,
      "neutral_image": neutral,
      "heatmap": storage.gray(record.heatmap),
      "au": np.asarray(record.au, np.float32),
      "pspi": np.float32(record.pspi),
      "identity": record.identity,
      "expression": record.expression,
      "view": record.view,
      "is_neutral": record.is_neutral,
      "key": record.key,
      "yaw": np.float32(record.yaw_deg),
      "pitch": np.float32(record.pitch_deg),
      "age_group": demo.age_group,
      "age_years": np.float32(demo.age_years),
      "gender": demo.gender,
      "ethnicity": demo.ethnicity,
      "ethnicity_mix": np.asarray(demo.ethnicity_mix, np.float32),
  }
