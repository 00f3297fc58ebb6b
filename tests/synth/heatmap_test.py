"""Heatmaps: zero for neutral, bright where the active AU moved the face."""

import numpy as np
import pytest

from synth import heatmap, render, rig

RES = 64
REGIONS = (
  "brow",
  "forehead",
  "eyelids",
  "cheeks",
  "nose",
  "upper_lip",
  "mouth",
  "chin",
  "jaw",
  "ears",
  "scalp",
  "neck",
)


@pytest.fixture(scope="module")
def renderer(head):
  r = render.FaceRenderer(RES)
  r.set_head(
    head.faces, head.uvs, np.full((4, 4, 3), 200, np.uint8), head.vertices
  )
  r.frame(head.vertices[head.parts["skin"]], 0.92)
  yield r
  r.close()


@pytest.fixture(scope="module")
def region_pixels(renderer, head):
  """Pixel masks of the head's regions, seen from the heatmap camera."""
  out = {}
  for name in REGIONS:
    img = renderer.render_scalar(
      head.vertices, head.regions[name].astype(np.float32), 0.0, 8.0
    )
    out[name] = img > 127
  return out


def test_neutral_heatmap_is_zero(renderer, head):
  hm = heatmap.render_heatmap(
    renderer, head.vertices, head.vertices.copy(), 0.012, 0.0, 8.0
  )
  assert hm.shape == (RES, RES, 1) and hm.dtype == np.uint8
  assert not hm.any()


@pytest.mark.parametrize(
  "au, region", [("AU4", "brow"), ("AU6", "cheeks"), ("AU10", "upper_lip")]
)
def test_heatmap_is_brightest_in_the_active_au_region(
  renderer, head, au_rig, region_pixels, au, region
):
  pain = au_rig.deform(head.vertices, {au: rig.AU_MAX[au]})
  hm = heatmap.render_heatmap(renderer, pain, head.vertices, 0.012, 0.0, 8.0)[
    ..., 0
  ].astype(float)
  means = {n: hm[m].mean() for n, m in region_pixels.items() if m.sum() > 5}
  assert max(means, key=means.get) == region, means
  for far in rig.AU_FAR_REGIONS[au]:
    if far in means:
      assert means[far] < 0.2 * means[region], (far, means)


def test_heatmap_grows_with_intensity_on_a_fixed_scale(renderer, head, au_rig):
  """A fixed full scale: maps compare across intensities (no per-image
  normalisation), so a stronger AU gives a brighter map."""
  sums = [
    heatmap.render_heatmap(
      renderer,
      au_rig.deform(head.vertices, {"AU4": k}),
      head.vertices,
      0.012,
      0.0,
      8.0,
    )
    .astype(float)
    .sum()
    for k in (1, 3, 5)
  ]
  assert sums[0] < sums[1] < sums[2]
  assert sums[2] / sums[0] > 3


def test_hot_colormap_runs_black_red_yellow_white():
  ramp = np.array([[0, 85, 170, 255]], np.uint8)
  rgb = heatmap.colormap(ramp)
  np.testing.assert_array_equal(rgb[0, 0], [0, 0, 0])
  assert tuple(rgb[0, 1]) == (255, 0, 0)
  assert tuple(rgb[0, 2]) == (255, 255, 0)
  assert tuple(rgb[0, 3]) == (255, 255, 255)
  assert heatmap.colormap(ramp[..., None], "viridis").shape == (1, 4, 3)
