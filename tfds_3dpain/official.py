"""One identity of the `official` import: released files -> examples.

Runs in the workers (runner.py) on an `official_layout.IdentityUnit`. Every
image is fully decoded once here: a file that cannot be decoded is reported
as a `(file name, reason)` note and skipped, and so is every pain image whose
neutral reference (same identity and view) or heatmap is unreadable. No
example is ever written with a substitute image or label.

JPEG files in RGB are stored as they are (no re-encoding loss); anything else
(PNG, grayscale or CMYK JPEG) is converted to RGB and encoded as JPEG,
because the `image` feature is declared JPEG. A config with a stored size
or the raw layout (`features.ImageStorage`) resizes and re-encodes every
image instead.
"""

from __future__ import annotations

import io

import numpy as np
from etils import epath
from PIL import Image

from tfds_3dpain import features
from tfds_3dpain.official_layout import IdentityUnit, PainItem

REENCODE_QUALITY = features.REENCODE_QUALITY
Note = tuple[str, str]


def _decode(path: str) -> tuple[bytes, Image.Image]:
  """(file bytes, fully decoded image); ValueError when unreadable."""
  try:
    data = epath.Path(path).read_bytes()
    image = Image.open(io.BytesIO(data))
    image.load()  # Full decode: catches truncated and corrupt files.
  except (OSError, SyntaxError, ValueError) as e:
    raise ValueError(f"unreadable image ({e.__class__.__name__}: {e})") from None
  if image.width == 0 or image.height == 0:
    raise ValueError("empty image")
  return data, image


def load_rgb_jpeg(path: str) -> tuple[bytes, tuple[int, int]]:
  """JPEG bytes of an RGB image and its (width, height)."""
  data, image = _decode(path)
  if image.format != "JPEG" or image.mode != "RGB":
    data = features.encode_jpeg(np.asarray(image.convert("RGB")), REENCODE_QUALITY)
  return data, image.size


def load_heatmap_png(path: str) -> bytes:
  """Single-channel PNG of a heatmap file (colour maps go to luminance)."""
  _, image = _decode(path)
  return features.encode_png(np.asarray(image.convert("L")))


def _zeros_png(size: tuple[int, int]) -> bytes:
  return features.encode_png(np.zeros((size[1], size[0]), np.uint8))


def _example(unit, key, image, neutral, heatmap, expression, view, au, pspi):
  return key, {
      "image": image,
      "neutral_image": neutral,
      "heatmap": heatmap,
      "au": np.asarray(au, np.float32),
      "pspi": np.float32(pspi),
      "identity": unit.identity,
      "expression": expression,
      "view": view,
      "is_neutral": expression == 0,
      "key": key,
  }


def _zeros_map(size: tuple[int, int], storage: features.ImageStorage):
  if storage.is_default():
    return _zeros_png(size)
  return storage.gray(np.zeros((size[1], size[0]), np.uint8))


def _neutral_examples(unit: IdentityUnit, notes: list[Note],
                      storage: features.ImageStorage):
  """{view: (stored image, size)} of readable neutrals, and their examples."""
  neutrals, examples = {}, []
  for view, path in sorted(unit.neutrals.items()):
    name = epath.Path(path).name
    try:
      jpeg, size = load_rgb_jpeg(path)
    except ValueError as e:
      notes.append((name, str(e)))
      continue
    stored = storage.rgb_from_jpeg(jpeg)
    neutrals[view] = (stored, size)
    examples.append(_example(unit, epath.Path(path).stem, stored, stored,
                             _zeros_map(size, storage), 0, view, [0.0] * 6,
                             0.0))
  return neutrals, examples


def _stored_heatmap(path: str, storage: features.ImageStorage):
  png = load_heatmap_png(path)
  if storage.is_default():
    return png
  with Image.open(io.BytesIO(png)) as im:
    return storage.gray(np.asarray(im))


def _pain_examples(unit, item: PainItem, neutrals, notes: list[Note],
                   storage: features.ImageStorage):
  heatmap = None
  if item.heatmap is not None:
    try:
      heatmap = _stored_heatmap(item.heatmap, storage)
    except ValueError as e:
      notes.append((epath.Path(item.heatmap).name, str(e)))
      notes.extend((epath.Path(p).name, "heatmap unreadable; skipped")
                   for p in item.images.values())
      return []
  examples = []
  for view, path in sorted(item.images.items()):
    name = epath.Path(path).name
    if view not in neutrals:
      notes.append((name, f"neutral image of view {view} unreadable; skipped"))
      continue
    try:
      jpeg, size = load_rgb_jpeg(path)
    except ValueError as e:
      notes.append((name, str(e)))
      continue
    examples.append(_example(
        unit, epath.Path(path).stem, storage.rgb_from_jpeg(jpeg),
        neutrals[view][0],
        heatmap if heatmap is not None else _zeros_map(size, storage),
        item.expression, view, item.au, item.pspi,
    ))
  return examples


def identity_examples(
    unit: IdentityUnit,
    storage: features.ImageStorage = features.DEFAULT_STORAGE,
) -> tuple[list, list[Note]]:
  """(examples, notes on skipped files) of one released identity.

  Args:
    unit: the identity's files.
    storage: how images are stored (default: the released JPEG bytes).
  """
  notes: list[Note] = []
  neutrals, examples = _neutral_examples(unit, notes, storage)
  for item in unit.pain:
    examples += _pain_examples(unit, item, neutrals, notes, storage)
  return examples, notes
