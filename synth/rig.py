"""FACS action-unit rig: integer AU intensities -> vertex displacements.

Each AU drives a fixed combination of ARKit-named blendshapes (the Face Units
of the MakeHuman head, or a user file for FLAME). An AU at intensity k of a
maximum K adds (k / K) times its combination: linear, hence strictly monotone
in k, and local because each blendshape only moves its own part of the face.
AUs add up linearly (the blendshape model). The AU -> blendshape mapping is a
project choice (reference.md §E.3): browDown for AU4 (brow lowerer),
cheekSquint for AU6 (cheek raiser), eyeSquint for AU7 (lid tightener),
noseSneer for AU9 (nose wrinkler), mouthUpperUp for AU10 (upper-lip raiser)
and a full eyeBlink for AU43 (eyes closed); further AUs serve as distractors.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from synth import records
from synth.head import HeadModel


def _lr(base: str, w: float = 1.0) -> dict[str, float]:
  return {f"{base}Left": w, f"{base}Right": w}


AU_BLENDSHAPES: dict[str, dict[str, float]] = {
    "AU1": {"browInnerUp": 1.0},                    # inner brow raiser
    "AU2": _lr("browOuterUp"),                      # outer brow raiser
    "AU4": _lr("browDown"),                         # brow lowerer
    "AU5": _lr("eyeWide"),                          # upper lid raiser
    "AU6": _lr("cheekSquint"),                      # cheek raiser
    "AU7": _lr("eyeSquint"),                        # lid tightener
    "AU9": _lr("noseSneer"),                        # nose wrinkler
    "AU10": _lr("mouthUpperUp"),                    # upper lip raiser
    "AU12": _lr("mouthSmile"),                      # lip corner puller
    "AU14": _lr("mouthDimple"),                     # dimpler
    "AU15": _lr("mouthFrown"),                      # lip corner depressor
    "AU17": {"mouthShrugLower": 1.0},               # chin raiser
    "AU18": {"mouthPucker": 1.0},                   # lip pucker
    "AU20": _lr("mouthStretch"),                    # lip stretcher
    "AU24": _lr("mouthPress"),                      # lip pressor
    "AU25": _lr("mouthLowerDown"),                  # lips part
    "AU26": {"jawOpen": 0.5},                       # jaw drop
    "AU27": {"jawOpen": 1.0},                       # mouth stretch
    "AU43": _lr("eyeBlink"),                        # eyes closed
}
AU_MAX: dict[str, int] = {au: (1 if au == "AU43" else 5)
                          for au in AU_BLENDSHAPES}
PAIN_AUS = records.AU_NAMES
# Where each pain AU acts, and regions it must leave in place: the rig's
# locality contract, checked by the tests and used by heatmap sanity checks.
AU_REGIONS: dict[str, tuple[str, ...]] = {
    "AU4": ("brow",),
    "AU6": ("cheeks",),
    "AU7": ("eyelids",),
    "AU9": ("nose",),
    "AU10": ("upper_lip",),
    "AU43": ("eyelids",),
}
AU_FAR_REGIONS: dict[str, tuple[str, ...]] = {
    "AU4": ("chin", "jaw", "neck", "ears"),
    "AU6": ("forehead", "neck"),
    "AU7": ("chin", "forehead", "neck", "ears"),
    "AU9": ("chin", "neck", "ears"),
    "AU10": ("forehead", "brow", "neck", "ears"),
    "AU43": ("chin", "mouth", "forehead", "neck", "ears"),
}


def validate_aus(aus: Mapping[str, int]) -> dict[str, int]:
  """Checks AU names and intensities.

  Args:
    aus: AU name -> integer intensity (integral floats are accepted).

  Returns:
    The same mapping with plain int values.

  Raises:
    ValueError: unknown AU, non-integer or out-of-range intensity.
  """
  out = {}
  for name, value in aus.items():
    if name not in AU_BLENDSHAPES:
      raise ValueError(f"unknown action unit {name!r}; valid AUs are "
                       f"{sorted(AU_BLENDSHAPES, key=_au_number)}")
    hi = AU_MAX[name]
    ok = (not isinstance(value, bool) and isinstance(
        value, int | float | np.integer | np.floating)
          and float(value).is_integer())
    if not ok or not 0 <= value <= hi:
      raise ValueError(f"{name} intensity must be an integer in [0, {hi}], "
                       f"got {value!r}")
    out[name] = int(value)
  return out


def _au_number(name: str) -> int:
  return int(name[2:])


def au_vector_to_dict(au: np.ndarray) -> dict[str, int]:
  """(6,) intensities in records.AU_NAMES order -> validated AU dict."""
  au = np.asarray(au)
  if au.shape != (len(records.AU_NAMES),):
    raise ValueError(f"expected an AU vector of shape "
                     f"({len(records.AU_NAMES)},) in order "
                     f"{records.AU_NAMES}, got shape {au.shape}")
  return validate_aus(dict(zip(records.AU_NAMES, au.tolist(), strict=True)))


class AURig:
  """Deforms a head's meshes by FACS AU intensities."""

  def __init__(self, head: HeadModel):
    """Prepares one dense (V, 3) displacement basis per available AU.

    Raises:
      ValueError: the head lacks blendshapes for the pain AUs (for FLAME:
        load it with an ARKit blendshape file).
    """
    self.head = head
    names = head.expression_targets
    missing = sorted({s for au in PAIN_AUS for s in AU_BLENDSHAPES[au]}
                     - set(names))
    if missing:
      hint = (" FLAME has no ARKit blendshapes: pass an npz of ARKit-named "
              "(V, 3) offsets as load_head_model('flame', path, "
              "blendshapes=...)." if head.name == "flame" else "")
      raise ValueError(f"the {head.name} head cannot be rigged: blendshapes "
                       f"{missing} are missing.{hint}")
    self.available = tuple(
        au for au, shapes in AU_BLENDSHAPES.items()
        if all(s in names for s in shapes))
    self._basis: dict[str, np.ndarray] = {}

  def basis(self, au: str) -> np.ndarray:
    """The (V, 3) displacement of `au` at its maximum intensity."""
    if au not in self._basis:
      if au not in self.available:
        raise ValueError(f"{au} needs blendshapes "
                         f"{sorted(AU_BLENDSHAPES[au])}, which the "
                         f"{self.head.name} head lacks")
      field = np.zeros_like(self.head.vertices, dtype=np.float32)
      for shape, w in AU_BLENDSHAPES[au].items():
        t = self.head.expression_targets[shape]
        field[t.indices] += np.float32(w) * t.deltas
      self._basis[au] = field
    return self._basis[au]

  def offsets(self, aus: Mapping[str, int]) -> np.ndarray:
    """(V, 3) float32 displacement for AU intensities (missing AUs are 0)."""
    out = np.zeros_like(self.head.vertices, dtype=np.float32)
    for au, k in validate_aus(aus).items():
      if k:
        out += np.float32(k / AU_MAX[au]) * self.basis(au)
    return out

  def deform(self, vertices: np.ndarray, aus: Mapping[str, int]
             ) -> np.ndarray:
    """`vertices` (an identity's neutral mesh) plus the AU offsets."""
    if vertices.shape != self.head.vertices.shape:
      raise ValueError(f"vertices must have shape {self.head.vertices.shape}"
                       f" (this head), got {vertices.shape}")
    return (vertices + self.offsets(aus)).astype(np.float32)
