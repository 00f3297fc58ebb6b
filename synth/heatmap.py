"""Pain-region heatmaps: where a pain expression moved the face.

For each pain expression the per-vertex displacement magnitude
|pain - neutral| (metres) is divided by a fixed, dataset-wide full scale
(`SynthConfig.heatmap_full_scale_m`) and rendered frontally (the camera of
view 0) as an unlit single-channel map on black. A fixed scale, not the
per-image maximum, keeps maps comparable: a brighter pixel means a larger
movement in every identity and expression. The neutral expression's map is
zero by definition. `colormap` turns maps into the black-red-yellow-white
'hot' images of the paper's figure, for display only.
"""

from __future__ import annotations

import numpy as np


def displacement(
  pain_vertices: np.ndarray, neutral_vertices: np.ndarray
) -> np.ndarray:
  """Per-vertex displacement magnitude in metres, (V,) float32."""
  d = np.asarray(pain_vertices, np.float32) - np.asarray(
    neutral_vertices, np.float32
  )
  return np.linalg.norm(d, axis=1)


def render_heatmap(
  renderer,
  pain_vertices: np.ndarray,
  neutral_vertices: np.ndarray,
  full_scale_m: float,
  yaw_deg: float,
  pitch_deg: float,
) -> np.ndarray:
  """Renders the displacement map on the pain mesh.

  Args:
    renderer: a synth.render.FaceRenderer already framed on the identity.
    pain_vertices, neutral_vertices: (V, 3) meshes of one identity.
    full_scale_m: displacement (metres) that maps to 255; larger saturates.
    yaw_deg, pitch_deg: the camera (view 0 in the pipeline).

  Returns:
    (H, W, 1) uint8 heatmap.
  """
  values = displacement(pain_vertices, neutral_vertices) / full_scale_m
  return renderer.render_scalar(pain_vertices, values, yaw_deg, pitch_deg)[
    ..., None
  ]


def colormap(heatmap: np.ndarray, name: str = "hot") -> np.ndarray:
  """Colours a uint8 heatmap ((H, W) or (H, W, 1)) for display.

  'hot' is black -> red -> yellow -> white (computed here, exact and
  dependency-free); any other name is looked up in matplotlib.

  Returns:
    (H, W, 3) uint8 RGB.
  """
  h = np.asarray(heatmap)
  if h.ndim == 3:
    h = h[..., 0]
  x = h.astype(np.float32) / 255.0
  if name == "hot":
    rgb = np.stack(
      [
        np.clip(3 * x, 0, 1),
        np.clip(3 * x - 1, 0, 1),
        np.clip(3 * x - 2, 0, 1),
      ],
      -1,
    )
  else:
    from matplotlib import colormaps

    rgb = colormaps[name](x)[..., :3]
  return (rgb * 255 + 0.5).astype(np.uint8)
