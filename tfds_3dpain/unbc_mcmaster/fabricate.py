"""Fabricated UNBC-shaped data for tests and demos (NOT UNBC-McMaster).

UNBC is licensed and cannot ship with the project, yet the readers, folds,
TFDS builder and cross-validation runner must be exercised end to end. This
module makes a small table with the same structure: subjects named like
"042-ll042", sequences of frames that start neutral and rise into pain, AU
labels consistent with PSPI, and images in which pain is *visible* (a dark
brow band for AU4, a narrowed eye band for AU6/7 and AU43, a bright
nose/lip patch for AU9/10) on a per-subject face colour, so a tiny model can
learn something and metrics are not pure noise.
"""

from __future__ import annotations

import numpy as np

from synth import records
from tfds_3dpain.unbc_mcmaster import unbc


class ArrayImages:
  """Row -> image from an in-memory (N, H, W, 3) uint8 array."""

  def __init__(self, images: np.ndarray):
    self.array = np.asarray(images, dtype=np.uint8)

  def __call__(self, row: int) -> np.ndarray:
    return self.array[row]


def _aus_for(rng: np.random.Generator, level: float) -> np.ndarray:
  """A random AU vector whose intensities grow with `level` in [0, 1]."""
  if level <= 0:
    return np.zeros(6, np.float32)
  au = rng.binomial(5, min(1.0, level), size=6).astype(np.float32)
  au[5] = float(rng.random() < level * 0.5)  # AU43 is binary
  return au


def _draw(au: np.ndarray, face: np.ndarray, size: int,
          rng: np.random.Generator) -> np.ndarray:
  """Render a crude face whose regions darken/brighten with the AUs."""
  img = np.broadcast_to(face, (size, size, 3)).astype(np.float32).copy()
  s = size
  brow = slice(s // 5, s // 5 + max(1, s // 10))
  eyes = slice(s // 3, s // 3 + max(1, s // 8))
  nose = slice(s // 2, s // 2 + max(1, s // 6))
  img[brow, s // 5: 4 * s // 5] -= 20.0 * au[0]
  img[eyes, s // 5: 4 * s // 5] -= 12.0 * max(au[1], au[2]) + 60.0 * au[5]
  img[nose, 2 * s // 5: 3 * s // 5] += 15.0 * max(au[3], au[4])
  img += rng.normal(0.0, 4.0, img.shape)
  return np.clip(img, 0, 255).astype(np.uint8)


def make_unbc(n_subjects: int = 10, n_sequences: int = 2, n_frames: int = 8,
              size: int = 32, seed: int = 0,
              no_neutral_subjects: tuple[int, ...] = ()) -> unbc.UnbcData:
  """A fabricated frame table with UNBC's structure.

  Args:
    n_subjects, n_sequences, n_frames: table shape (subjects x sequences x
      frames per sequence).
    size: square image side.
    seed: everything is a function of it.
    no_neutral_subjects: positions (0-based) of subjects whose frames all get
      PSPI >= 1, to exercise the "no neutral frame" fallback.

  Returns:
    An in-memory `UnbcData` (layout "fabricated").
  """
  rng = np.random.default_rng(seed)
  cols = {k: [] for k in ("name", "seq", "frame", "au", "pspi", "key", "img")}
  for si in range(n_subjects):
    sid = 40 + 3 * si
    name = f"{sid:03d}-xx{sid:03d}"
    face = rng.uniform(90, 200, size=3)
    for q in range(n_sequences):
      seq = f"xx{sid:03d}t{q + 1}aaaff"
      peak = rng.uniform(0.3, 1.0)
      for fi in range(n_frames):
        level = peak * np.sin(np.pi * fi / max(n_frames - 1, 1))
        au = _aus_for(rng, level)
        if si in no_neutral_subjects and records.pspi(au) < 1:
          au[0] = max(au[0], 1.0)
        for k, v in (("name", name), ("seq", seq), ("frame", fi + 1),
                     ("au", au), ("pspi", float(records.pspi(au))),
                     ("key", f"{name}/{seq}/{seq}{fi + 1:03d}"),
                     ("img", _draw(au, face, size, rng))):
          cols[k].append(v)
  n = len(cols["key"])
  return unbc.make_table(
      cols["name"], cols["seq"], cols["frame"], np.stack(cols["au"]),
      cols["pspi"], cols["key"], ArrayImages(np.stack(cols["img"])),
      np.arange(n), {}, "fabricated")
