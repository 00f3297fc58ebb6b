"""The head-model data types shared by every backend.

A head is a fixed-topology triangle mesh plus sparse linear targets: identity
targets (who the person is) and expression blendshapes (what the face does).
Backends (MakeHuman, FLAME) only differ in where these arrays come from, so
everything downstream (identities, the AU rig, rendering, heatmaps) sees one
type and never needs to know the backend.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Part and region names every backend should try to fill. Downstream code
# (texturing, heatmap checks) looks masks up by these names.
PART_NAMES = ("skin", "eyes", "teeth", "tongue", "eyelashes", "eyebrows")
REGION_NAMES = (
    "brow", "forehead", "periorbital", "eyelids", "cheeks", "nose",
    "upper_lip", "mouth", "chin", "jaw", "ears", "scalp", "neck",
)


@dataclasses.dataclass(frozen=True, eq=False)
class Target:
  """A sparse per-vertex displacement: `V[indices] += weight * deltas`.

  Sparse because a face target touches a few hundred of ~5k vertices; storing
  only those keeps parsing, memory and deformation cheap.

  Attributes:
    indices: (K,) int32 unique vertex indices into the head's vertices.
    deltas: (K, 3) float32 displacement in metres for weight 1.
  """

  indices: np.ndarray
  deltas: np.ndarray

  def __post_init__(self):
    if self.indices.ndim != 1 or self.deltas.shape != (len(self.indices), 3):
      raise ValueError(
          f"Target needs indices (K,) and deltas (K, 3); got "
          f"{self.indices.shape} and {self.deltas.shape}"
      )

  def dense(self, num_vertices: int) -> np.ndarray:
    """The (num_vertices, 3) float32 displacement field of weight 1."""
    out = np.zeros((num_vertices, 3), np.float32)
    out[self.indices] = self.deltas
    return out

  def max_displacement(self) -> float:
    """Largest per-vertex displacement length (metres) at weight 1."""
    if len(self.indices) == 0:
      return 0.0
    return float(np.linalg.norm(self.deltas, axis=1).max())


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class HeadModel:
  """A neutral head template with identity targets and blendshapes.

  Attributes:
    name: backend name, 'makehuman' or 'flame'.
    vertices: (V, 3) float32 neutral template in metres; the face looks to +z,
      y is up, x points to the person's left; the origin is the centre of the
      skin's bounding box (near the head centre).
    faces: (F, 3) int32 triangles, counter-clockwise seen from outside.
    uvs: (V, 2) float32 texture coordinates in [0, 1]; vertices on UV seams
      are duplicated so that UVs are per-vertex (what pyrender needs).
    parts: bool (V,) material masks ('skin', 'eyes', 'teeth', ...).
    regions: bool (V,) facial-region masks over the skin ('brow', 'nose', ...).
    identity_targets: named identity targets (macro and face-shape).
    expression_targets: ARKit-named expression blendshapes.
  """

  name: str
  vertices: np.ndarray
  faces: np.ndarray
  uvs: np.ndarray
  parts: dict[str, np.ndarray]
  regions: dict[str, np.ndarray]
  identity_targets: dict[str, Target]
  expression_targets: dict[str, Target]

  def __repr__(self) -> str:
    return (f"HeadModel({self.name!r}, {self.num_vertices} vertices, "
            f"{len(self.faces)} triangles, {len(self.identity_targets)} "
            f"identity targets, {len(self.expression_targets)} blendshapes)")

  @property
  def num_vertices(self) -> int:
    return int(self.vertices.shape[0])

  def apply_targets(
      self, weights: dict[str, float], targets: dict[str, Target]
  ) -> np.ndarray:
    """Template plus the weighted sum of `targets[name]` for `weights`.

    Args:
      weights: target name -> weight; every name must be in `targets`.
      targets: `identity_targets` or `expression_targets`.

    Returns:
      (V, 3) float32 deformed vertices (a new array).
    """
    out = self.vertices.astype(np.float32, copy=True)
    for name, w in weights.items():
      if w == 0.0:
        continue
      t = targets[name]
      out[t.indices] += np.float32(w) * t.deltas
    return out
