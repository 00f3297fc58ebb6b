"""Tests of the FLAME backend with a small fabricated model in FLAME's format.

The real FLAME2020 `generic_model.pkl` is a Python 2 pickle of a dict whose
arrays are chumpy `Ch` objects and whose `J_regressor` is a scipy CSC matrix.
The fixture writes a 36-vertex model the same way: a module named
`chumpy.ch` with a `Ch` class is faked while pickling, so the file refers to
`chumpy.ch.Ch` exactly as the real one does (chumpy itself is not needed).
"""

import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse

from synth import identity, rig
from synth.head import load_head_model, safe_pickle


def _sphere(rings, segs, radius, centre):
  """A UV sphere: (rings * segs + 2, 3) vertices and its triangles."""
  v = [[0, radius[1], 0]]
  for r in range(1, rings + 1):
    phi = np.pi * r / (rings + 1)
    for s in range(segs):
      th = 2 * np.pi * s / segs
      v.append([radius[0] * np.sin(phi) * np.sin(th),
                radius[1] * np.cos(phi),
                radius[2] * np.sin(phi) * np.cos(th)])
  v.append([0, -radius[1], 0])
  f = [[0, 1 + s, 1 + (s + 1) % segs] for s in range(segs)]
  for r in range(rings - 1):
    a, b = 1 + r * segs, 1 + (r + 1) * segs
    for s in range(segs):
      s2 = (s + 1) % segs
      f += [[a + s, b + s, b + s2], [a + s, b + s2, a + s2]]
  last, bottom = 1 + (rings - 1) * segs, len(v) - 1
  f += [[last + s, bottom, last + (s + 1) % segs] for s in range(segs)]
  return np.array(v) + centre, np.array(f)


def _tiny_flame(num_shape=6):
  head_v, head_f = _sphere(4, 6, (0.08, 0.11, 0.1), np.zeros(3))
  parts_v, parts_f = [head_v], [head_f]
  for x in (0.03, -0.03):
    ev, ef = _sphere(1, 3, (0.01, 0.01, 0.01), np.array([x, 0.02, 0.08]))
    parts_f.append(ef + sum(len(p) for p in parts_v))
    parts_v.append(ev)
  v = np.concatenate(parts_v).astype(np.float64)
  f = np.concatenate(parts_f).astype(np.uint32)
  rng = np.random.default_rng(0)
  shapedirs = rng.normal(0, 0.002, (len(v), 3, num_shape + 4))
  return v, f, shapedirs


class _FakeCh:
  """Pickles like chumpy.ch.Ch built from an array (state holds 'x')."""

  def __init__(self, x):
    self.x = x

  def __getstate__(self):
    return {"x": self.x, "_dirty_vars": set(), "_itr": None}


@pytest.fixture()
def flame_pkl(tmp_path, monkeypatch):
  v, f, shapedirs = _tiny_flame()
  chumpy = types.ModuleType("chumpy")
  ch = types.ModuleType("chumpy.ch")
  _FakeCh.__module__, _FakeCh.__qualname__ = "chumpy.ch", "Ch"
  ch.Ch = _FakeCh
  monkeypatch.setitem(sys.modules, "chumpy", chumpy)
  monkeypatch.setitem(sys.modules, "chumpy.ch", ch)
  model = {
      "v_template": _FakeCh(v), "f": f, "shapedirs": _FakeCh(shapedirs),
      "posedirs": _FakeCh(np.zeros((len(v), 3, 36))),
      "J_regressor": scipy.sparse.csc_matrix(np.eye(5, len(v))),
      "weights": _FakeCh(np.full((len(v), 5), 0.2)),
      "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
      "bs_style": "lbs", "bs_type": "lrotmin",
  }
  path = tmp_path / "generic_model.pkl"
  with open(path, "wb") as fh:
    pickle.dump(model, fh, protocol=2)
  monkeypatch.delitem(sys.modules, "chumpy.ch")
  monkeypatch.delitem(sys.modules, "chumpy")
  return str(path), v, f, shapedirs


def _blendshapes(tmp_path, v, names):
  offsets = {}
  for k, name in enumerate(sorted(names)):
    d = np.zeros_like(v, dtype=np.float32)
    d[k % 26] = [0, 0.003, 0]
    offsets[name] = d
  path = tmp_path / "arkit.npz"
  np.savez(path, **offsets)
  return str(path)


def test_restricted_pickle_reads_chumpy_and_sparse(flame_pkl):
  path, v, _, shapedirs = flame_pkl
  model = safe_pickle.load(path)
  np.testing.assert_array_equal(safe_pickle.to_numpy(model["v_template"]), v)
  np.testing.assert_array_equal(safe_pickle.to_numpy(model["shapedirs"]),
                                shapedirs)
  np.testing.assert_array_equal(safe_pickle.to_numpy(model["J_regressor"]),
                                np.eye(5, len(v)))


def test_flame_head_model(flame_pkl):
  path, v, f, shapedirs = flame_pkl
  head = load_head_model("flame", path)
  assert head.name == "flame" and head.num_vertices == len(v)
  assert head.faces.dtype == np.int32 and head.faces.max() < len(v)
  assert head.parts["skin"].sum() == 26 and head.parts["eyes"].sum() == 10
  assert not head.parts["teeth"].any()
  # Planar frontal UVs without a texture space, in [0, 1].
  assert head.uvs.min() >= 0 and head.uvs.max() <= 1
  skin = head.vertices[head.parts["skin"]]
  np.testing.assert_allclose(0.5 * (skin.min(0) + skin.max(0)), 0,
                             atol=1e-7)
  # First shape components become identity targets (10 columns: 6 + 4).
  assert sorted(head.identity_targets) == [f"pca/{i:03d}" for i in range(10)]
  np.testing.assert_allclose(head.identity_targets["pca/002"].dense(len(v)),
                             shapedirs[:, :, 2], rtol=1e-6)
  assert set(head.regions) >= {"brow", "nose", "mouth", "chin"}


def test_flame_identity_uses_shape_components(flame_pkl):
  head = load_head_model("flame", flame_pkl[0])
  ident = identity.sample_identity(3, seed=1)
  verts = identity.neutral_vertices(head, ident)
  w = np.array([ident.shape_weights[f"pca/{i:03d}"] for i in range(10)])
  expected = head.vertices + np.einsum("vck,k->vc", flame_pkl[3], w)
  expected -= (expected - head.vertices)[head.parts["skin"]].mean(0)
  np.testing.assert_allclose(verts, expected, atol=1e-6)


def test_rig_needs_blendshapes_for_flame(flame_pkl, tmp_path):
  head = load_head_model("flame", flame_pkl[0])
  with pytest.raises(ValueError, match="blendshapes=") as err:
    rig.AURig(head)
  assert "browDownLeft" in str(err.value)
  names = {s for au in rig.PAIN_AUS for s in rig.AU_BLENDSHAPES[au]}
  bs = _blendshapes(tmp_path, flame_pkl[1], names)
  rigged = rig.AURig(load_head_model("flame", flame_pkl[0], blendshapes=bs))
  assert np.abs(rigged.offsets({"AU4": 5})).max() == pytest.approx(0.003)
  assert "AU12" not in rigged.available
  with pytest.raises(ValueError, match="AU12 needs blendshapes"):
    rigged.offsets({"AU12": 2})


def test_texture_space_splits_seams(flame_pkl, tmp_path):
  path, v, f, _ = flame_pkl
  ft = np.arange(f.size).reshape(f.shape)       # every corner its own UV
  vt = np.random.default_rng(0).uniform(0, 1, (f.size, 2))
  tex = tmp_path / "tex.npz"
  np.savez(tex, vt=vt, ft=ft)
  head = load_head_model("flame", path, texture_space=str(tex))
  assert head.num_vertices == f.size
  np.testing.assert_allclose(head.uvs[head.faces.ravel()],
                             vt[ft.ravel()], atol=1e-6)
  np.testing.assert_allclose(head.vertices[head.faces],
                             load_head_model("flame", path).vertices[f],
                             atol=1e-7)


def test_npz_model_is_accepted(flame_pkl, tmp_path):
  _, v, f, shapedirs = flame_pkl
  path = tmp_path / "flame.npz"
  np.savez(path, v_template=v, f=f, shapedirs=shapedirs)
  head = load_head_model("flame", str(path))
  assert head.num_vertices == len(v)


class _Exploit:
  def __reduce__(self):
    return (os.system, ("touch pwned",))


def test_disallowed_global_is_rejected_without_running(tmp_path,
                                                       monkeypatch):
  monkeypatch.chdir(tmp_path)
  path = tmp_path / "evil.pkl"
  with open(path, "wb") as fh:
    pickle.dump({"v_template": _Exploit()}, fh, protocol=2)
  with pytest.raises(safe_pickle.UnsafePickleError, match="system"):
    load_head_model("flame", str(path))
  assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("model,match", [
    ({"v_template": np.zeros((4, 3)), "f": np.zeros((2, 3), int)},
     r"missing keys \['shapedirs'\]"),
    ({"v_template": np.zeros((4, 2)), "f": np.zeros((2, 3), int),
      "shapedirs": np.zeros((4, 3, 2))}, r"v_template has shape \(4, 2\)"),
    ({"v_template": np.zeros((4, 3)), "f": np.full((2, 3), 9),
      "shapedirs": np.zeros((4, 3, 2))}, "outside"),
    ({"v_template": np.zeros((4, 3)), "f": np.zeros((2, 3), int),
      "shapedirs": np.zeros((5, 3, 2))}, r"shapedirs has shape \(5, 3, 2\)"),
])
def test_bad_flame_files(tmp_path, model, match):
  path = tmp_path / "bad.npz"
  np.savez(path, **model)
  with pytest.raises(ValueError, match=match):
    load_head_model("flame", str(path))


def test_missing_flame_files(tmp_path, flame_pkl):
  with pytest.raises(FileNotFoundError, match="generic_model.pkl"):
    load_head_model("flame")
  with pytest.raises(FileNotFoundError, match="not found"):
    load_head_model("flame", str(tmp_path / "nope.pkl"))
  with pytest.raises(FileNotFoundError, match="blendshape"):
    load_head_model("flame", flame_pkl[0], blendshapes=str(tmp_path / "x"))
  bad = tmp_path / "bs.npz"
  np.savez(bad, browDownLeft=np.zeros((3, 3)))
  with pytest.raises(ValueError, match="browDownLeft"):
    load_head_model("flame", flame_pkl[0], blendshapes=str(bad))
