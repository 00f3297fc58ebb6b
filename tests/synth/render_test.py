"""Rendering: every view shows a centred face; buffers update in place."""

import numpy as np
import pytest

from synth import render

RES = 64
VIEWS = ((0.0, 8.0), (-30.0, 5.0), (30.0, 5.0))


@pytest.fixture(scope="module")
def renderer(head):
  r = render.FaceRenderer(RES)
  tex = np.full((8, 8, 3), 200, np.uint8)
  r.set_head(head.faces, head.uvs, tex, head.vertices)
  r.set_lighting(render.Lighting())
  r.frame(head.vertices[head.parts["skin"]], 0.92)
  yield r
  r.close()


@pytest.mark.parametrize("view", VIEWS)
def test_each_view_renders_a_centred_face(renderer, head, view):
  rgba, depth = renderer.render(head.vertices, *view)
  mask = rgba[..., 3] > 127
  assert rgba.shape == (RES, RES, 4) and depth.shape == (RES, RES)
  # A head, not a speck and not the whole frame.
  assert 0.2 < mask.mean() < 0.8
  rows, cols = np.nonzero(mask)
  assert abs(cols.mean() - RES / 2) < 0.1 * RES
  assert abs(rows.mean() - RES / 2) < 0.12 * RES
  # Lit and textured: not black, varied shading.
  lum = rgba[..., :3][mask].mean(1)
  assert lum.mean() > 60 and lum.std() > 5
  assert np.all(depth[mask] > 0) and np.all(depth[~mask] == 0)


def test_side_views_see_opposite_cheeks(renderer, head):
  """Yaw > 0 moves the camera to the person's left (x > 0), which then
  lies nearer to the camera than the right cheek."""
  x = head.vertices[:, 0]
  left, right = head.vertices[x > 0.05], head.vertices[x < -0.05]
  pose = renderer.camera_pose(30.0, 5.0)
  eye = pose[:3, 3]
  assert (
    np.linalg.norm(left - eye, axis=1).mean()
    < np.linalg.norm(right - eye, axis=1).mean()
  )


def test_vertex_updates_replace_the_geometry(renderer, head):
  base, _ = renderer.render(head.vertices, 0.0, 8.0)
  moved = head.vertices + np.array([0.03, 0.0, 0.0], np.float32)
  shifted, _ = renderer.render(moved, 0.0, 8.0)
  cols = lambda im: np.nonzero(im[..., 3] > 127)[1].mean()
  # The person's left (+x) is on the image's right in a frontal view.
  assert cols(shifted) > cols(base) + 2
  again, _ = renderer.render(head.vertices.copy(), 0.0, 8.0)
  np.testing.assert_array_equal(again, base)


def test_scalar_render_is_unlit_and_exact(renderer, head):
  values = np.full(len(head.vertices), 0.5, np.float32)
  img = renderer.render_scalar(head.vertices, values, 0.0, 8.0)
  rgba, _ = renderer.render(head.vertices, 0.0, 8.0)
  inside = rgba[..., 3] > 127
  assert img.dtype == np.uint8 and img.shape == (RES, RES)
  assert np.all(np.abs(img[inside].astype(int) - 128) <= 1)
  assert np.all(img[~inside] == 0)


def test_look_at_points_the_camera_at_the_target():
  pose = render.orbit_pose(np.zeros(3), 2.0, 0.0, 0.0)
  np.testing.assert_allclose(pose[:3, 3], [0, 0, 2], atol=1e-9)
  np.testing.assert_allclose(pose[:3, 2], [0, 0, 1], atol=1e-9)  # -z looks
  up = render.orbit_pose(np.zeros(3), 1.0, 0.0, 30.0)
  assert up[1, 3] > 0 and up[1, 2] > 0  # above, looking down
