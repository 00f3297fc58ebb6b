"""FLAME backend: a user-supplied FLAME model file as a HeadModel.

FLAME (generic_model.pkl, FLAME2020) is registration-gated, so it is never
bundled or downloaded: users pass the file. The pickle is read with a
restricted unpickler (`safe_pickle`); an `.npz` with the same keys works too.
Used keys: `v_template` (V, 3), `f` (F, 3) and `shapedirs` (V, 3, K); the
first (at most 300) shape components become identity targets 'pca/NNN'
(FLAME2020's 400 columns are 300 shape + 100 expression). Pose and skinning
data (posedirs, J_regressor, weights, kintree_table) are not needed for a
static head and are ignored.

FLAME has no ARKit blendshapes: an optional npz of ARKit-named (V, 3) offsets
(metres) provides them; without it the AU rig refuses the head. FLAME
pickles carry no UVs: an optional npz with 'vt' (T, 2) and 'ft' (F, 3), as in
FLAME's texture space, provides them; otherwise UVs are a planar frontal
projection (x, y of the template scaled to [0, 1]), which is adequate for
frontal texturing and stretched on the sides.
"""

from __future__ import annotations

import os

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from synth.head import regions, safe_pickle
from synth.head.model import PART_NAMES, HeadModel, Target

MAX_SHAPE_COMPONENTS = 300
_REQUIRED = ("v_template", "f", "shapedirs")


def load_flame(path: str | None, *, blendshapes: str | None = None,
               texture_space: str | None = None) -> HeadModel:
  """Builds a HeadModel from a FLAME model file.

  Args:
    path: FLAME model (`.pkl` pickle or `.npz`).
    blendshapes: optional npz of ARKit-named (V, 3) offsets in metres.
    texture_space: optional npz with 'vt' (T, 2) and 'ft' (F, 3).

  Returns:
    The HeadModel, centred on its skin bounding box.

  Raises:
    FileNotFoundError: a file is missing.
    ValueError: a file lacks keys or has wrong shapes.
    safe_pickle.UnsafePickleError: the pickle references disallowed code.
  """
  if not path:
    raise FileNotFoundError(
        "the 'flame' head backend needs the FLAME model file: pass "
        "path='.../generic_model.pkl' (FLAME2020, from flame.is.tue.mpg.de)")
  model = _read_model(path)
  template, faces, shapedirs = _validate(path, model)
  num_v = len(template)
  offsets = _read_blendshapes(blendshapes, num_v) if blendshapes else {}
  new_to_old, uvs, faces = _texture_space(texture_space, template, faces)
  skin_old, eyes_old = _components(faces, new_to_old, num_v)
  centre = 0.5 * (template[skin_old].min(0) + template[skin_old].max(0))
  vertices = (template[new_to_old] - centre).astype(np.float32)
  k = min(shapedirs.shape[2], MAX_SHAPE_COMPONENTS)
  ident = {f"pca/{i:03d}": _dense_target(shapedirs[new_to_old, :, i])
           for i in range(k)}
  expr = {n: _dense_target(d[new_to_old]) for n, d in offsets.items()}
  parts = {name: np.zeros(len(vertices), bool) for name in PART_NAMES}
  parts["skin"] = skin_old[new_to_old]
  parts["eyes"] = eyes_old[new_to_old]
  lm = _landmarks(vertices, parts)
  reg = regions.compute_regions(vertices, parts["skin"], lm)
  return HeadModel(name="flame", vertices=vertices, faces=faces, uvs=uvs,
                   parts=parts, regions=reg, identity_targets=ident,
                   expression_targets=expr)


def _read_model(path: str) -> dict:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"FLAME model file not found: {path}")
  if path.endswith(".npz"):
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}
  model = safe_pickle.load(path)
  if not isinstance(model, dict):
    raise ValueError(f"{path}: a FLAME model pickle holds a dict, got "
                     f"{type(model).__name__}")
  return model


def _validate(path: str, model: dict):
  missing = [k for k in _REQUIRED if k not in model]
  if missing:
    raise ValueError(f"{path} is not a FLAME model: missing keys {missing} "
                     f"(found {sorted(model)})")
  template = safe_pickle.to_numpy(model["v_template"]).astype(np.float64)
  faces = safe_pickle.to_numpy(model["f"]).astype(np.int64)
  dirs = safe_pickle.to_numpy(model["shapedirs"]).astype(np.float32)
  num_v = template.shape[0] if template.ndim == 2 else -1
  problems = []
  if template.ndim != 2 or template.shape[1] != 3:
    problems.append(f"v_template has shape {template.shape}, expected (V, 3)")
  if faces.ndim != 2 or faces.shape[1] != 3:
    problems.append(f"f has shape {faces.shape}, expected (F, 3)")
  elif faces.size and (faces.min() < 0 or faces.max() >= num_v):
    problems.append(f"f indexes vertices outside [0, {num_v})")
  if dirs.ndim != 3 or dirs.shape[:2] != (num_v, 3):
    problems.append(f"shapedirs has shape {dirs.shape}, expected "
                    f"({num_v}, 3, K)")
  if problems:
    raise ValueError(f"{path} is not a valid FLAME model: "
                     + "; ".join(problems))
  return template, faces, dirs


def _read_blendshapes(path: str, num_v: int) -> dict[str, np.ndarray]:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"FLAME blendshape file not found: {path}")
  with np.load(path, allow_pickle=False) as z:
    out = {k: z[k].astype(np.float32) for k in z.files}
  bad = {k: v.shape for k, v in out.items() if v.shape != (num_v, 3)}
  if bad:
    raise ValueError(f"{path}: every blendshape must be ({num_v}, 3) "
                     f"offsets in metres; wrong shapes {bad}")
  return out


def _texture_space(path, template, faces):
  """Seam-split vertices and UVs (user texture space or planar projection)."""
  if path is None:
    lo, hi = template.min(0), template.max(0)
    uvs = (template[:, :2] - lo[:2]) / np.maximum(hi[:2] - lo[:2], 1e-12)
    return (np.arange(len(template)), uvs.astype(np.float32),
            faces.astype(np.int32))
  if not os.path.isfile(path):
    raise FileNotFoundError(f"FLAME texture-space file not found: {path}")
  with np.load(path, allow_pickle=False) as z:
    if not {"vt", "ft"} <= set(z.files):
      raise ValueError(f"{path}: a texture-space file needs 'vt' (T, 2) and "
                       f"'ft' (F, 3); found {z.files}")
    vt, ft = z["vt"].astype(np.float64), z["ft"].astype(np.int64)
  if ft.shape != faces.shape or vt.ndim != 2 or vt.shape[1] != 2 or (
      ft.size and (ft.min() < 0 or ft.max() >= len(vt))):
    raise ValueError(f"{path}: 'ft' must match f's shape {faces.shape} and "
                     f"index 'vt' (T, 2); got ft {ft.shape}, vt {vt.shape}")
  pairs = np.stack([faces, ft], -1).reshape(-1, 2)
  uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
  new_faces = inverse.reshape(-1, 3).astype(np.int32)
  uvs = np.clip(vt[uniq[:, 1]], 0.0, 1.0).astype(np.float32)
  return uniq[:, 0], uvs, new_faces


def _components(faces, new_to_old, num_v):
  """Skin = the largest connected component; eyes = the other ones."""
  old_faces = new_to_old[faces]
  i = old_faces[:, [0, 1, 2]].ravel()
  j = old_faces[:, [1, 2, 0]].ravel()
  graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(num_v, num_v))
  _, labels = connected_components(graph, directed=False)
  used = np.zeros(num_v, bool)
  used[old_faces.ravel()] = True
  counts = np.bincount(labels[used])
  skin = used & (labels == np.argmax(counts))
  return skin, used & ~skin


def _dense_target(field: np.ndarray) -> Target:
  moved = np.any(field != 0.0, axis=1)
  idx = np.nonzero(moved)[0].astype(np.int32)
  return Target(idx, field[idx].astype(np.float32))


def _landmarks(vertices, parts) -> regions.Landmarks:
  """Eyes from the eyeball components when present, else the bounding box."""
  skin = vertices[parts["skin"]]
  eyes = vertices[parts["eyes"]]
  if len(eyes) == 0 or (eyes[:, 0] > 0).all() or (eyes[:, 0] < 0).all():
    return regions.bbox_landmarks(skin)
  left = eyes[eyes[:, 0] > 0].mean(0)
  right = eyes[eyes[:, 0] < 0].mean(0)
  ipd = float(left[0] - right[0])
  mouth_y = float(0.5 * (left[1] + right[1]) - 1.05 * ipd)
  band = skin[(skin[:, 1] < left[1]) & (skin[:, 1] > mouth_y)
              & (np.abs(skin[:, 0]) < 0.25 * ipd)]
  if len(band) == 0:
    return regions.bbox_landmarks(skin)
  tip = band[np.argmax(band[:, 2])]
  return regions.Landmarks(eye_left=left, eye_right=right, mouth_y=mouth_y,
                           nose_tip=tip)
