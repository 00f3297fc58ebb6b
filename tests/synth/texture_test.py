"""UV atlas rasterisation and procedural skin textures."""

import types

import numpy as np
import pytest

from synth import atlas, records, texture


def _quad():
  """Two triangles covering the UV unit square, as a tiny 'head'."""
  v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
  return types.SimpleNamespace(
    vertices=v,
    faces=np.array([[0, 1, 2], [0, 2, 3]], np.int32),
    uvs=v[:, :2].copy(),
    parts={"skin": np.ones(4, bool)},
    regions={},
  )


def test_rasteriser_covers_and_interpolates_exactly():
  quad = _quad()
  a = atlas.build_atlas(quad, 32)
  # Every texel centre inside the quad's atlas rectangle is covered.
  lo, hi = a.uvs.min(0) * 32, a.uvs.max(0) * 32
  cols = np.arange(32) + 0.5
  inside_u = (cols > lo[0]) & (cols < hi[0])
  inside_v = (32 - cols > lo[1]) & (32 - cols < hi[1])
  rect = inside_v[:, None] & inside_u[None, :]
  assert rect.sum() > 300 and np.all(a.covered[rect])
  np.testing.assert_allclose(a.bary.sum(-1), 1.0, atol=1e-5)
  pos = a.interpolate(quad.vertices, quad.faces)
  # Texel centres map back onto the surface point of their atlas UV.
  rows, cols = np.nonzero(a.covered)
  u = (cols + 0.5) / 32
  v = 1 - (rows + 0.5) / 32
  uv = np.stack([u, v], -1)
  lo, hi = a.uvs.min(0), a.uvs.max(0)
  np.testing.assert_allclose(
    pos[rows, cols, :2], (uv - lo) / (hi - lo), atol=1e-4
  )
  # Every texel, covered or padding, points at a real triangle.
  assert a.tri.min() >= 0 and a.nearest.max() < a.covered.sum()


def test_head_atlas_separates_overlapping_parts(head):
  a = atlas.build_atlas(head, 256)
  # Every triangle at least two texels large gets texels of its own.
  t = a.uvs[head.faces] * 256
  area = 0.5 * np.abs(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]))
  seen = np.zeros(len(head.faces), bool)
  seen[a.tri[a.covered]] = True
  assert (area >= 2).sum() > 1000 and np.all(seen[area >= 2])
  # Parts whose source UVs overlap (the two eyeballs) get disjoint texels:
  # each texel's triangle has all its vertices in a single part.
  tri = a.tri[a.covered]
  eyes = head.parts["eyes"][head.faces[tri]]
  assert np.all(eyes.all(1) | ~eyes.any(1))
  left = head.vertices[head.faces[tri, 0], 0] > 0
  eye_tex = eyes.all(1)
  assert eye_tex[left].any() and eye_tex[~left].any()


@pytest.fixture(scope="module")
def painter(head):
  return texture.ProceduralTexture(head, 512)


def _demo(ethnicity, gender="female", age="young", years=30.0):
  mix = tuple(float(e == ethnicity) for e in records.ETHNICITIES)
  return records.Demographics(age, years, gender, ethnicity, mix)


def test_paint_is_deterministic_and_varies_with_the_seed(painter):
  d = _demo("asian")
  a = painter.paint(d, np.random.default_rng(1))
  b = painter.paint(d, np.random.default_rng(1))
  c = painter.paint(d, np.random.default_rng(2))
  assert a.shape == (512, 512, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  assert np.abs(a.astype(int) - c).mean() > 1


def test_skin_tone_follows_ethnicity(painter):
  skin = painter.atlas.part[painter.atlas.covered] == 0
  lum = {}
  for eth in records.ETHNICITIES:
    vals = [
      painter.paint(_demo(eth), np.random.default_rng(s))[
        painter.atlas.covered
      ][skin].mean()
      for s in range(2)
    ]
    lum[eth] = np.mean(vals)
  assert lum["african"] < lum["asian"] - 40
  assert lum["african"] < lum["caucasian"] - 40


def test_features_are_painted(painter, head):
  tex = painter.paint(_demo("caucasian"), np.random.default_rng(0))
  cov = painter.atlas.covered
  texels = tex[cov].astype(float)
  pos = painter.pos
  lips = (painter.f["lips"] > 0.9) & (painter.f["mouth_dark"] < 0.05)
  skin = (
    painter.masks["skin"]
    & (painter.f["lips"] < 0.01)
    & (painter.f["brow_zone"] < 0.01)
    & (painter.f["side"] < 0.2)
  )
  # Lips are redder than the surrounding skin.
  redness = texels[:, 0] / np.maximum(texels[:, 1], 1)
  assert lips.sum() > 20
  assert redness[lips].mean() > redness[skin].mean() + 0.1
  # Eyes have a dark pupil straight ahead and a light sclera around it.
  eyes = painter.masks["eyes"]
  centre = painter.lm.eyes[(pos[:, 0] > 0).astype(int)]
  d = pos - centre
  cos = d[:, 2] / np.linalg.norm(d, axis=1)
  ahead = eyes & (cos > np.cos(0.12))
  assert ahead.sum() > 5 and texels[ahead].mean() < 30
  assert np.percentile(texels[eyes].mean(1), 75) > 150


def test_roughness_map_makes_hair_matte_and_eyes_glossy(painter):
  albedo, rough = painter.paint_maps(
    _demo("african", "female"), np.random.default_rng(3)
  )
  np.testing.assert_array_equal(
    albedo, painter.paint(_demo("african", "female"), np.random.default_rng(3))
  )
  r = rough[painter.atlas.covered][:, 0].astype(float) / 255
  crown = painter.masks["skin"] & (painter.pos[:, 1] > painter.lm.crown - 0.01)
  assert r[painter.masks["eyes"]].max() < 0.15
  assert r[crown].mean() > 0.75
  cheeks = (
    painter.masks["skin"]
    & (painter.pos[:, 1] < painter.lm.eyes[0, 1])
    & (painter.f["side"] < 0.25)
    & (painter.f["lips"] < 0.01)
  )
  assert 0.4 < np.median(r[cheeks]) < 0.7
  assert not rough[..., 1:].any()  # metalness 0 (pyrender: green channel)
