"""Feature spec of `3dpain` and the encoding of one example, without TensorFlow.

TFDS encodes numpy images with `tf.image.encode_*`, which needs TensorFlow
(stack.md §5). We hand it JPEG / PNG bytes encoded with Pillow instead, which
TFDS stores as they are, so preparing the ArrayRecord files works in a
TF-free environment and in Beam workers alike.

One function per source turns a unit of work into examples: `synthetic_
example(record)` for a `synth.records.ImageRecord`. The official import
builds its dicts in `official.py` with the same keys minus the synthesis-only
labels (camera angles, demographics).
"""

from __future__ import annotations

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


def _image(shape, fmt: str, doc: str) -> tfds.features.Image:
  return tfds.features.Image(shape=shape, encoding_format=fmt, doc=doc)


def _scalar(dtype, doc: str) -> tfds.features.Scalar:
  return tfds.features.Scalar(dtype=dtype, doc=doc)


def common_features(resolution: int | None) -> dict[str, tfds.features.FeatureConnector]:
  """Features shared by synthetic and official configs."""
  side = resolution
  rgb, gray = (side, side, 3), (side, side, 1)
  return {
      "image": _image(rgb, "jpeg", "The face image (pain or neutral)."),
      "neutral_image": _image(
          rgb,
          "jpeg",
          "The neutral expression of the same identity from the same view "
          "(equal to `image` for neutral examples).",
      ),
      "heatmap": _image(
          gray,
          "png",
          "Pain-region map, one channel: per-vertex displacement from the "
          "neutral mesh, rendered frontally; all zero for neutral examples.",
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


def synthetic_features(resolution: int) -> tfds.features.FeaturesDict:
  """The full feature set of the generated configs."""
  feats = common_features(resolution)
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


def official_features() -> tfds.features.FeaturesDict:
  """Features of the official import: the released labels only."""
  return tfds.features.FeaturesDict(common_features(None))


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
    record: records.ImageRecord, jpeg_quality: int, neutral_jpeg: bytes
) -> tuple[str, dict]:
  """(key, example dict) for one generated image, all images as bytes.

  Args:
    record: the generated image and its labels.
    jpeg_quality: JPEG quality of `image`.
    neutral_jpeg: the encoded neutral image of the same identity and view;
      passed in so that it is encoded once per view, and so that a neutral
      example's `image` and every `neutral_image` of that view are the same
      bytes.
  """
  demo = record.demographics
  image = neutral_jpeg if record.is_neutral else encode_jpeg(
      record.image, jpeg_quality
  )
  neutral = neutral_jpeg
  return record.key, {
      "image": image,
      "neutral_image": neutral,
      "heatmap": encode_png(record.heatmap),
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
