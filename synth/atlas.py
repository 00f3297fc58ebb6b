"""UV atlas of a head model: which surface point every texel shows.

Textures are painted per texel, as functions of where the texel lies on the
template surface (3D position, mesh part), so brows, lips and irises are sharp
at any texture size instead of being limited to the vertex density. This
module lays the head's parts out in one square atlas and rasterises the
triangles in UV space once per head model (numpy, about 0.1 s at 512²):

- Parts are given their own tiles because their source UVs overlap (in the
  MakeHuman mesh both eyeballs, the teeth and the face share UV space).
- Every texel gets a triangle id and barycentric coordinates, so any
  per-vertex quantity (template or identity positions, normals) can be
  interpolated to texels. Texels outside all triangles copy their nearest
  covered texel, so mip-mapping never bleeds black into the skin.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

# Share of the atlas width given to the skin; the rest is a column of tiles.
_SKIN_WIDTH = 0.78
_PAD = 0.01


@dataclasses.dataclass(frozen=True)
class UVAtlas:
  """Per-texel lookup into the head surface.

  Attributes:
    size: texture side in texels.
    uvs: (V, 2) float32 atlas UVs per vertex (v up, as OpenGL samples).
    tri: (S, S) int32 triangle of each texel (nearest one off-surface).
    bary: (S, S, 3) float32 barycentric weights of each texel in `tri`.
    covered: (S, S) bool, texels inside a triangle.
    nearest: (S, S) int32 rank, among the covered texels in row-major order,
      of each texel's nearest covered texel: painting only the covered
      texels (a 1-D array) and gathering with `nearest` fills the whole
      texture, padding included.
    part: (S, S) int16 index into `part_names` of each texel.
    part_names: the parts, in tile order ('skin' first).
  """

  size: int
  uvs: np.ndarray
  tri: np.ndarray
  bary: np.ndarray
  covered: np.ndarray
  nearest: np.ndarray
  part: np.ndarray
  part_names: tuple[str, ...]

  def interpolate(self, values: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per-vertex values (V, C) -> per-texel values (S, S, C)."""
    corners = values[faces[self.tri]]  # (S, S, 3, C)
    return np.einsum("ijk,ijkc->ijc", self.bary, corners)


def vertex_part_labels(parts: dict[str, np.ndarray], num_vertices: int):
  """One label per vertex: 0 for skin, k for the k-th separate part.

  Parts that overlap the skin (e.g. an 'eyebrows' patch of skin vertices)
  are sub-regions of the skin surface, not separate meshes, so they keep
  the skin label and stay in the face's UV island.
  """
  names = ["skin"]
  label = np.zeros(num_vertices, np.int16)
  skin = np.asarray(parts.get("skin", np.zeros(num_vertices, bool)), bool)
  for name in sorted(parts):
    mask = np.asarray(parts[name], bool)
    if name == "skin" or not mask.any() or (mask & skin).any():
      continue
    names.append(name)
    label[mask] = len(names) - 1
  return tuple(names), label


def uv_islands(faces: np.ndarray, num_vertices: int) -> list[np.ndarray]:
  """Vertex masks of the mesh's connected pieces, largest first.

  Separate meshes (each eyeball, teeth, lash cards) are separate pieces,
  which is what lets their overlapping source UVs get their own tiles.
  """
  n = num_vertices
  rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
  cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
  graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), (n, n))
  _, comp = csgraph.connected_components(graph, directed=False)
  used = np.zeros(n, bool)
  used[faces.ravel()] = True
  masks = [used & (comp == c) for c in np.unique(comp[used])]
  return sorted(masks, key=lambda m: -int(m.sum()))


def _island_weight(vertices, faces, sel, is_eye) -> float:
  """Column share of a small island: sqrt of its surface area, tripled for
  eyes (tiny on the mesh, but the iris and pupil must stay sharp).
  """
  t = vertices[faces[sel[faces].all(1)]]
  area = (
    0.5
    * np.linalg.norm(
      np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1
    ).sum()
  )
  return float(np.sqrt(area)) * (3.0 if is_eye else 1.0) + 1e-6


def layout_uvs(uvs, faces, labels, names, vertices) -> np.ndarray:
  """Places each UV island in its own tile of the unit square.

  The largest skin island (the face) gets the big tile; the other islands
  (ears, mouth cavity, each eyeball half, teeth, lash cards, ...) stack in a
  side column, with heights by `_island_weight`.
  """
  out = np.zeros_like(uvs, dtype=np.float64)
  groups = uv_islands(faces, len(uvs))
  groups.sort(key=lambda m: (labels[m] != 0).mean() > 0.5)  # skin first
  eye = names.index("eyes") if "eyes" in names else -1
  weights = np.array(
    [
      _island_weight(vertices, faces, m, (labels[m] == eye).mean() > 0.5)
      for m in groups[1:]
    ]
  )
  tops = np.concatenate([[0.0], np.cumsum(weights) / max(weights.sum(), 1e-9)])
  for g, sel in enumerate(groups):
    src = uvs[sel].astype(np.float64)
    lo, hi = src.min(0), src.max(0)
    span = np.maximum(hi - lo, 1e-9)
    if g == 0:
      x0, y0, w, h = 0.0, 0.0, _SKIN_WIDTH, 1.0
    else:
      y0, h = tops[g - 1], tops[g] - tops[g - 1]
      x0, w = _SKIN_WIDTH, 1.0 - _SKIN_WIDTH
    pad = min(_PAD, h / 8)
    scale = min((w - 2 * pad) / span[0], (h - 2 * pad) / span[1])
    out[sel] = (src - lo) * scale + np.array([x0 + pad, y0 + pad])
  return out.astype(np.float32)


def _rasterise(px: np.ndarray, faces: np.ndarray, size: int):
  """Triangles in texel coordinates -> (tri, bary) per texel, -1 if none.

  Triangles are bucketed by bounding-box size so each bucket tests a fixed
  k x k block of texel centres, fully vectorised.
  """
  tri = np.full((size, size), -1, np.int32)
  bary = np.zeros((size, size, 3), np.float32)
  p = px[faces]  # (F, 3, 2)
  lo = np.floor(p.min(1) - 0.5).astype(np.int64)
  ext = np.ceil(p.max(1) - 0.5).astype(np.int64) - lo + 1
  extent = ext.max(1)
  k = 1
  done = np.zeros(len(faces), bool)
  while not done.all():
    sel = np.nonzero(~done & (extent <= k))[0]
    done[sel] = True
    for chunk in np.array_split(sel, max(1, len(sel) * k * k // 2_000_000)):
      if len(chunk):
        _fill(chunk, p[chunk], lo[chunk], k, size, tri, bary)
    k *= 2
  return tri, bary


def _fill(ids, p, lo, k, size, tri, bary):
  d = np.arange(k)
  x = lo[:, 0, None, None] + d[None, None, :] + 0.5  # (n, 1, k)
  y = lo[:, 1, None, None] + d[None, :, None] + 0.5  # (n, k, 1)
  a, b, c = p[:, 0], p[:, 1], p[:, 2]
  det = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (
    a[:, 1] - c[:, 1]
  )
  det = np.where(np.abs(det) < 1e-12, 1e-12, det)[:, None, None]
  w0 = (
    (b[:, 1] - c[:, 1])[:, None, None] * (x - c[:, 0, None, None])
    + (c[:, 0] - b[:, 0])[:, None, None] * (y - c[:, 1, None, None])
  ) / det
  w1 = (
    (c[:, 1] - a[:, 1])[:, None, None] * (x - c[:, 0, None, None])
    + (a[:, 0] - c[:, 0])[:, None, None] * (y - c[:, 1, None, None])
  ) / det
  w2 = 1.0 - w0 - w1
  inside = (w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6)
  xi = np.broadcast_to(x - 0.5, inside.shape).astype(np.int64)
  yi = np.broadcast_to(y - 0.5, inside.shape).astype(np.int64)
  inside &= (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
  n, r, s = np.nonzero(inside)
  rows, cols = yi[n, r, s], xi[n, r, s]
  tri[rows, cols] = ids[n]
  bary[rows, cols] = np.stack(
    [w0[n, r, s], w1[n, r, s], w2[n, r, s]], -1
  ).astype(np.float32)


def build_atlas(head, size: int) -> UVAtlas:
  """Lays out and rasterises `head` (a synth.head.HeadModel) at `size`²."""
  vertices = np.asarray(head.vertices, np.float32)
  faces = np.asarray(head.faces, np.int64)
  names, labels = vertex_part_labels(head.parts, len(vertices))
  uvs = layout_uvs(np.asarray(head.uvs), faces, labels, names, vertices)
  # Texel rows count from the top of the image; UV v counts from the bottom.
  px = np.stack([uvs[:, 0] * size, (1.0 - uvs[:, 1]) * size], -1)
  tri, bary = _rasterise(px, faces, size)
  covered = tri >= 0
  if not covered.any():
    raise ValueError("head UVs cover no texel; check head.uvs")
  _, (ri, ci) = ndimage.distance_transform_edt(~covered, return_indices=True)
  tri, bary = tri[ri, ci], bary[ri, ci]
  rank = np.cumsum(covered.ravel()) - 1
  nearest = rank[ri * size + ci].astype(np.int32)
  part = labels[faces[tri, 0]]
  return UVAtlas(size, uvs, tri, bary, covered, nearest, part, names)
