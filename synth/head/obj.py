"""A minimal Wavefront OBJ reader and the head crop of the MakeHuman mesh.

Only what hm08's `base.obj` uses: `v`, `vt`, `g` and `f v/vt` polygons. The
crop keeps the body's faces above the neck joint plus the eye, teeth, tongue
and eyelash helpers, splits vertices on UV seams (one UV per vertex) and
triangulates the quads.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Base-mesh groups kept in the head, and the material part each belongs to.
# Hair, skirt, tights and genital helpers are proxy-fitting cages, not skin.
HELPER_PARTS = {
    "helper-l-eye": "eyes",
    "helper-r-eye": "eyes",
    "helper-upper-teeth": "teeth",
    "helper-lower-teeth": "teeth",
    "helper-tongue": "tongue",
    "helper-l-eyelashes-1": "eyelashes",
    "helper-l-eyelashes-2": "eyelashes",
    "helper-r-eyelashes-1": "eyelashes",
    "helper-r-eyelashes-2": "eyelashes",
}


@dataclasses.dataclass
class ObjMesh:
  """Raw OBJ content; faces are padded to 4 corners by repeating the last."""

  positions: np.ndarray     # (N, 3) float64
  texcoords: np.ndarray     # (T, 2) float64
  face_v: np.ndarray        # (F, 4) int64, 0-based
  face_vt: np.ndarray       # (F, 4) int64, 0-based
  face_group: np.ndarray    # (F,) str

  def group_vertices(self, group: str) -> np.ndarray:
    """Unique vertex indices used by the faces of one group."""
    return np.unique(self.face_v[self.face_group == group])


def read_obj(path: str) -> ObjMesh:
  """Parses the subset of OBJ that MakeHuman writes.

  Raises:
    ValueError: a face has no texture index or more than 4 corners.
  """
  pos, tex, fv, ft, fg = [], [], [], [], []
  group = ""
  with open(path) as fh:
    for line in fh:
      tag = line[:2]
      if tag == "v ":
        pos.append(line[2:])
      elif tag == "vt":
        tex.append(line[3:])
      elif tag == "g ":
        group = line[2:].strip()
      elif tag == "f ":
        corners = [c.split("/") for c in line.split()[1:]]
        if len(corners) not in (3, 4) or any(len(c) < 2 for c in corners):
          raise ValueError(f"{path}: unsupported face line {line.strip()!r}")
        corners += corners[-1:] * (4 - len(corners))
        fv.append([int(c[0]) - 1 for c in corners])
        ft.append([int(c[1]) - 1 for c in corners])
        fg.append(group)
  return ObjMesh(
      positions=np.array(" ".join(pos).split(), float).reshape(-1, 3),
      texcoords=np.array(" ".join(tex).split(), float).reshape(-1, 2),
      face_v=np.array(fv, np.int64),
      face_vt=np.array(ft, np.int64),
      face_group=np.array(fg),
  )


@dataclasses.dataclass
class Crop:
  """The head crop of the base mesh, seam-split and triangulated."""

  new_to_old: np.ndarray    # (V,) base-mesh vertex index of each vertex
  uvs: np.ndarray           # (V, 2) float32
  faces: np.ndarray         # (F, 3) int32
  parts: dict[str, np.ndarray]


def crop_head(mesh: ObjMesh, neck_y: float) -> Crop:
  """Keeps the head: body faces entirely above `neck_y`, plus the helpers.

  Args:
    mesh: the parsed base mesh.
    neck_y: height (base-mesh units) below which body faces are dropped.

  Returns:
    The crop; vertex order follows first use by the kept faces.
  """
  above = np.all(mesh.positions[mesh.face_v, 1] > neck_y, axis=1)
  keep_body = (mesh.face_group == "body") & above
  face_part = np.where(keep_body, "skin", "")
  for group, part in HELPER_PARTS.items():
    face_part = np.where(mesh.face_group == group, part, face_part)
  kept = np.nonzero(face_part != "")[0]
  # A vertex of the new mesh is one (position, texcoord) corner pair.
  pairs = np.stack([mesh.face_v[kept], mesh.face_vt[kept]], -1).reshape(-1, 2)
  uniq, first, inverse = np.unique(
      pairs, axis=0, return_index=True, return_inverse=True)
  order = np.argsort(first)             # stable, first-use order
  rank = np.empty_like(order)
  rank[order] = np.arange(len(order))
  corners = rank[inverse.reshape(-1)].reshape(-1, 4)
  uniq = uniq[order]
  tris = np.concatenate([corners[:, [0, 1, 2]], corners[:, [0, 2, 3]]])
  tris = tris[(tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2])
              & (tris[:, 0] != tris[:, 2])]
  parts = {}
  vert_part = np.empty(len(uniq), dtype=face_part.dtype)
  vert_part[corners.reshape(-1)] = np.repeat(face_part[kept], 4)
  for name in ("skin", "eyes", "teeth", "tongue", "eyelashes"):
    parts[name] = vert_part == name
  uvs = np.clip(mesh.texcoords[uniq[:, 1]], 0.0, 1.0).astype(np.float32)
  return Crop(uniq[:, 0], uvs, tris.astype(np.int32), parts)
