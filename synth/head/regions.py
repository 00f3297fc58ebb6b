"""Facial-region masks from a few landmarks, for any head topology.

Regions are defined geometrically (bands and ellipses around the eyes, mouth
and nose) rather than from any expression blendshape, so "an AU moves only its
region" is a real check of the rig, not a tautology. The bands are expressed
in units of the eye-to-mouth distance, so they scale with the head.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Landmarks:
  """Head landmarks in the template frame (metres, face to +z, y up).

  Attributes:
    eye_left, eye_right: eyeball centres ((3,) each; left is +x).
    mouth_y: height of the lip line (where the lips meet).
    nose_tip: (3,) most forward point of the nose.
  """

  eye_left: np.ndarray
  eye_right: np.ndarray
  mouth_y: float
  nose_tip: np.ndarray


def bbox_landmarks(vertices: np.ndarray) -> Landmarks:
  """Generic landmarks from a face-centred bounding box.

  For topologies without named joints (FLAME, fabricated test meshes): eyes a
  little above the centre, the mouth a quarter of the height below, the nose
  tip at the front. Proportions follow an average adult head.
  """
  lo, hi = vertices.min(0), vertices.max(0)
  c, size = (lo + hi) / 2, hi - lo
  eye_y = c[1] + 0.05 * size[1]
  eye_z = c[2] + 0.3 * size[2]
  ex = 0.18 * size[0]
  return Landmarks(
      eye_left=np.array([c[0] + ex, eye_y, eye_z]),
      eye_right=np.array([c[0] - ex, eye_y, eye_z]),
      mouth_y=float(c[1] - 0.22 * size[1]),
      nose_tip=np.array([c[0], c[1] - 0.1 * size[1], hi[2]]),
  )


def compute_regions(
    vertices: np.ndarray,
    skin: np.ndarray,
    lm: Landmarks,
    nose: np.ndarray | None = None,
    ears: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
  """Boolean (V,) masks of facial regions over the skin.

  Args:
    vertices: (V, 3) template vertices.
    skin: (V,) bool mask of skin vertices; regions are subsets of it.
    lm: landmarks.
    nose, ears: optional masks from the backend (e.g. the support of its
      nose/ear shape targets); geometric fallbacks otherwise.

  Returns:
    region name -> (V,) bool; brow, forehead, periorbital, eyelids, cheeks,
    nose, upper_lip, mouth, chin, jaw, ears, scalp, neck.
  """
  x, y, z = (vertices[:, i] for i in range(3))
  ey = 0.5 * (lm.eye_left[1] + lm.eye_right[1])
  ex = 0.5 * (lm.eye_left[0] - lm.eye_right[0])
  cx = 0.5 * (lm.eye_left[0] + lm.eye_right[0])
  u = ey - lm.mouth_y                       # eye-to-mouth distance
  ax = np.abs(x - cx)
  eye_z = 0.5 * (lm.eye_left[2] + lm.eye_right[2])
  front = skin & (z > eye_z - 0.45 * u)
  ym = lm.mouth_y
  dxe = ax - ex                              # signed x from nearest eye
  in_eye = (np.abs(dxe) < 0.3 * u) & (y > ey - 0.2 * u) & (y < ey + 0.24 * u)
  eyelids = front & in_eye & (z > eye_z + 0.1 * u)
  periorbital = front & ~eyelids & (
      (dxe / (0.55 * u)) ** 2 + ((y - ey + 0.05 * u) / (0.45 * u)) ** 2 < 1)
  brow = front & (y >= ey + 0.24 * u) & (y < ey + 0.62 * u) & (ax < 1.9 * ex)
  forehead = front & (y >= ey + 0.62 * u) & (y < ey + 1.4 * u) & (
      ax < 1.9 * ex)
  if nose is None:
    nose = (ax < 0.4 * u) & (y > ym + 0.3 * u) & (y < ey) & (
        z > lm.nose_tip[2] - 0.5 * u)
  # The nose also owns the column in front of the eyes' depth down the
  # midline: the bridge and the nasal cavity's inner surface.
  nose = nose | ((ax < 0.25 * u) & (z > eye_z - 0.45 * u))
  nose = front & nose & (ax < 0.36 * u) & (y < ey + 0.15 * u) & (
      y > lm.nose_tip[1] - 0.15 * u) & ~eyelids
  mouth = front & (ax < 0.5 * u) & (y > ym - 0.25 * u) & (y < ym + 0.1 * u)
  upper_lip = front & (ax < 0.5 * u) & (y >= ym + 0.1 * u) & (
      y < lm.nose_tip[1]) & ~nose
  chin = front & (ax < 0.5 * u) & (y <= ym - 0.25 * u) & (y > ym - 1.1 * u)
  cheeks = front & (ax >= 0.3 * u) & (ax < 1.4 * u) & (y > ym) & (
      y < ey - 0.2 * u) & ~(nose | periorbital | eyelids | upper_lip | mouth)
  jaw = front & (y <= ym) & (y > ym - 1.0 * u) & ~(chin | mouth)
  if ears is None:
    ears = (ax > 1.9 * ex) & (np.abs(y - ey + 0.4 * u) < 0.6 * u) & (
        np.abs(z - (eye_z - 1.1 * u)) < 0.4 * u)
  ears = skin & ears & (ax > 2.2 * ex) & (z < eye_z - 0.7 * u)
  named = {
      "brow": brow, "forehead": forehead, "periorbital": periorbital,
      "eyelids": eyelids, "cheeks": cheeks, "nose": nose,
      "upper_lip": upper_lip, "mouth": mouth, "chin": chin, "jaw": jaw,
      "ears": ears,
  }
  taken = np.logical_or.reduce(list(named.values()))
  # The rest: the cranium above the lip line, the neck below it.
  named["scalp"] = skin & ~taken & (y > ym)
  named["neck"] = skin & ~taken & (y <= ym)
  # Earlier entries win where the bands overlap, so regions are disjoint.
  out, used = {}, np.zeros_like(skin)
  for name in ("eyelids", "nose", "mouth", "upper_lip", "periorbital",
               "brow", "forehead", "chin", "cheeks", "jaw", "ears",
               "scalp", "neck"):
    out[name] = named[name] & ~used
    used |= out[name]
  return out
