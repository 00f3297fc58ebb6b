"""Headless pyrender rendering of textured heads and per-vertex scalar maps.

One `FaceRenderer` (one GL context, one scene) lives per worker process and
is reused for every identity: per identity the mesh and its UV texture are
uploaded once, and per expression only the vertex buffer is rewritten in
place (`glBufferSubData`), which is what keeps rendering cheap on a CPU
rasteriser (Mesa llvmpipe).

The GL platform must be chosen before PyOpenGL is imported: EGL when its
library loads (Mesa llvmpipe works headless), OSMesa when only that is
present; an explicit `PYOPENGL_PLATFORM` always wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import math
import os
import sys

import numpy as np
from scipy import sparse


def select_gl_platform() -> str:
  """Sets PYOPENGL_PLATFORM (if unset) to a headless platform that loads."""
  if os.environ.get("PYOPENGL_PLATFORM"):
    return os.environ["PYOPENGL_PLATFORM"]
  platform = "egl"
  try:
    ctypes.CDLL(ctypes.util.find_library("EGL") or "libEGL.so.1")
  except OSError:
    if ctypes.util.find_library("OSMesa"):
      platform = "osmesa"
  os.environ["PYOPENGL_PLATFORM"] = platform
  return platform


select_gl_platform()

import pyrender  # noqa: E402
from OpenGL import GL  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Lighting:
  """Lights of one identity (see SynthConfig for the sampled ranges)."""

  key_intensity: float = 3.2
  key_azimuth_deg: float = 25.0
  key_elevation_deg: float = 25.0
  fill_ratio: float = 0.4
  ambient: float = 0.35
  tint: float = 0.0


def sample_lighting(config, rng: np.random.Generator) -> Lighting:
  """Draws an identity's lighting uniformly within the config's ranges."""
  names = [f.name for f in dataclasses.fields(Lighting)]
  return Lighting(**{n: float(rng.uniform(*getattr(config, n))) for n in names})


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
  """Camera-to-world pose (OpenGL: camera looks down its -z, y up)."""
  z = eye - target
  z = z / np.linalg.norm(z)
  x = np.cross([0.0, 1.0, 0.0], z)
  x = x / np.linalg.norm(x)
  y = np.cross(z, x)
  pose = np.eye(4)
  pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, eye
  return pose


def orbit_pose(target, distance, yaw_deg, pitch_deg) -> np.ndarray:
  """Pose of a camera on a sphere around `target` (config convention)."""
  yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
  direction = np.array(
    [
      math.sin(yaw) * math.cos(pitch),
      math.sin(pitch),
      math.cos(yaw) * math.cos(pitch),
    ]
  )
  return look_at(
    np.asarray(target, float) + distance * direction, np.asarray(target, float)
  )


def _direction_pose(azimuth_deg, elevation_deg) -> np.ndarray:
  """Pose of a directional light shining from (azimuth, elevation)."""
  return orbit_pose(np.zeros(3), 1.0, azimuth_deg, elevation_deg)


class VertexNormals:
  """Smooth vertex normals, welded across UV seams.

  Vertices split at UV seams share a position; summing face normals over
  the welded position (a sparse matrix built once per topology) avoids
  visible shading seams.
  """

  def __init__(self, vertices: np.ndarray, faces: np.ndarray):
    _, weld = np.unique(np.round(vertices, 6), axis=0, return_inverse=True)
    weld = weld.ravel()
    rows = weld[faces.ravel()]
    cols = np.repeat(np.arange(len(faces)), 3)
    shape = (int(weld.max()) + 1, len(faces))
    self._acc = sparse.csr_matrix(
      (np.ones(len(rows), np.float32), (rows, cols)), shape
    )
    self._weld = weld
    self._faces = faces

  def __call__(self, vertices: np.ndarray) -> np.ndarray:
    tri = vertices[self._faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = (self._acc @ fn)[self._weld]
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return n.astype(np.float32)


def _write(primitive: pyrender.Primitive, **attrs: np.ndarray) -> None:
  """Replaces vertex attributes of a primitive, in place on the GPU.

  Before its first render a primitive has no GL buffers yet, so the arrays
  are just stored; afterwards its interleaved vertex buffer (positions,
  normals, texcoords, colours: pyrender's order) is rewritten with
  glBufferSubData instead of deleting and re-creating the mesh.
  """
  for name, value in attrs.items():
    setattr(primitive, name, value)
  if not primitive._in_context():
    return
  order = ("positions", "normals", "texcoord_0", "color_0")
  cols = [getattr(primitive, n) for n in order]
  data = np.ascontiguousarray(
    np.hstack([c for c in cols if c is not None]), dtype=np.float32
  )
  GL.glBindBuffer(GL.GL_ARRAY_BUFFER, primitive._buffers[0])
  GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, data.nbytes, data)
  GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)


def _set_msaa_samples(gl: pyrender.OffscreenRenderer, samples: int) -> None:
  """Makes a pyrender renderer allocate `samples`-fold MSAA buffers.

  pyrender hard-codes 4x MSAA. On Mesa llvmpipe (a CPU rasteriser) that
  more than doubles the CPU time per render (46 vs 20 ms at 256², measured
  with the MakeHuman head), so the pipeline renders without MSAA by default
  and antialiases the silhouette when compositing instead. pyrender keeps
  its blit-and-read path; with 0 samples the blit is a plain copy.
  """
  inner = gl._renderer
  configure = type(inner)._configure_main_framebuffer
  module = sys.modules[type(inner).__module__]

  def configure_with_samples():
    real = module.glRenderbufferStorageMultisample
    module.glRenderbufferStorageMultisample = lambda target, _, fmt, w, h: real(
      target, samples, fmt, w, h
    )
    try:
      configure(inner)
    finally:
      module.glRenderbufferStorageMultisample = real

  inner._configure_main_framebuffer = configure_with_samples


def _keep_egl_display(gl: pyrender.OffscreenRenderer) -> None:
  """Makes deleting this renderer destroy only its own EGL context.

  pyrender's EGL platform also calls eglTerminate on delete (explicit or
  from `__del__`), but the display is shared by every EGL context of the
  process: one renderer going away would break all the others.
  """
  platform = gl._platform
  if not hasattr(platform, "_egl_display"):
    return

  def delete_context():
    from OpenGL.EGL import eglDestroyContext

    if platform._egl_context is not None:
      eglDestroyContext(platform._egl_display, platform._egl_context)
      platform._egl_context = None

  platform.delete_context = delete_context


class FaceRenderer:
  """Renders one head at a time from orbiting cameras (one GL context).

  Args:
    resolution: square output side in pixels.
    fov_deg: vertical field of view of the camera.
    msaa_samples: multisampling of the framebuffer (0 = none).
  """

  def __init__(
    self, resolution: int, fov_deg: float = 18.0, msaa_samples: int = 0
  ):
    self.resolution = resolution
    self.fov_deg = fov_deg
    try:
      self._gl = pyrender.OffscreenRenderer(resolution, resolution)
      _set_msaa_samples(self._gl, msaa_samples)
      _keep_egl_display(self._gl)
    except Exception as e:  # noqa: BLE001 - GL reports many exception types
      raise RuntimeError(
        f"could not create a headless GL context "
        f"(PYOPENGL_PLATFORM={os.environ.get('PYOPENGL_PLATFORM')}): {e}. "
        "Install Mesa EGL (apt-get install libegl1 libegl-mesa0 "
        "libgl1-mesa-dri) or OSMesa (libosmesa6, PyOpenGL>=3.1.5) and set "
        "PYOPENGL_PLATFORM=egl or osmesa."
      ) from e
    self.scene = pyrender.Scene(bg_color=(0, 0, 0, 0), ambient_light=(0.3,) * 3)
    self._camera = self.scene.add(
      pyrender.PerspectiveCamera(
        yfov=math.radians(fov_deg), znear=0.05, zfar=5.0
      )
    )
    self._key = self.scene.add(pyrender.DirectionalLight(intensity=3.0))
    self._fill = self.scene.add(pyrender.DirectionalLight(intensity=1.0))
    self._face = self._scalar = None
    self._topology = None
    self.target = np.zeros(3)
    self.distance = 1.0

  def close(self) -> None:
    self._gl.delete()

  # ------------------------------------------------------------------ setup

  def set_head(
    self,
    faces: np.ndarray,
    uvs: np.ndarray,
    texture: np.ndarray,
    vertices: np.ndarray,
    roughness: np.ndarray | None = None,
  ) -> None:
    """Uploads a head with its first vertices.

    Args:
      faces, uvs: topology and per-vertex UVs.
      texture: (S, S, 3) uint8 sRGB albedo.
      vertices: (V, 3) first vertex positions.
      roughness: optional (S, S, 3) uint8 metallic-roughness map as
        pyrender reads it (roughness in red, metalness in green); a uniform
        0.62 without it.
    """
    faces = np.asarray(faces, np.int32)
    if self._topology is None or self._topology[0] is not faces:
      self._normals = VertexNormals(np.asarray(vertices, np.float32), faces)
      self._topology = (faces,)
    for node in (self._face, self._scalar):
      if node is not None:
        self.scene.remove_node(node)
    normals = self._normals(vertices)
    mr = None
    if roughness is not None:
      mr = pyrender.Texture(source=roughness, source_channels="RGB")
    material = pyrender.MetallicRoughnessMaterial(
      baseColorTexture=pyrender.Texture(source=texture, source_channels="RGB"),
      metallicRoughnessTexture=mr,
      metallicFactor=0.0,
      roughnessFactor=0.62 if mr is None else 1.0,
    )
    face = pyrender.Primitive(
      positions=vertices,
      normals=normals,
      texcoord_0=uvs,
      indices=faces,
      material=material,
    )
    scalar = pyrender.Primitive(
      positions=vertices,
      color_0=np.zeros((len(vertices), 4), np.float32),
      indices=faces,
      material=pyrender.MetallicRoughnessMaterial(
        baseColorFactor=(1.0, 1.0, 1.0, 1.0)
      ),
    )
    self._face = self.scene.add(pyrender.Mesh([face]))
    self._scalar = self.scene.add(pyrender.Mesh([scalar]))
    self._scalar.mesh.is_visible = False
    self._vertices = None

  def set_lighting(self, light: Lighting) -> None:
    warm = np.array([1.0 + light.tint, 1.0, 1.0 - light.tint])
    self._key.light.intensity = light.key_intensity
    self._key.light.color = warm
    self.scene.set_pose(
      self._key, _direction_pose(light.key_azimuth_deg, light.key_elevation_deg)
    )
    self._fill.light.intensity = light.key_intensity * light.fill_ratio
    self._fill.light.color = warm[::-1]
    self.scene.set_pose(
      self._fill,
      _direction_pose(
        -0.8 * light.key_azimuth_deg, 0.3 * light.key_elevation_deg
      ),
    )
    self.scene.ambient_light = np.full(3, light.ambient)

  def frame(self, vertices: np.ndarray, framing: float) -> None:
    """Aims the cameras at the centre of `vertices`' bounding box, from a
    distance where its larger side (height or width) spans `framing` of the
    image at the depth of its front.
    """
    lo, hi = vertices.min(0), vertices.max(0)
    self.target = (lo + hi) / 2.0
    size = float(max(hi[0] - lo[0], hi[1] - lo[1]))
    half = math.radians(self.fov_deg) / 2.0
    self.distance = (
      size / 2.0 / (math.tan(half) * framing) + float(hi[2] - lo[2]) / 2.0
    )

  # ---------------------------------------------------------------- renders

  def _set_vertices(self, vertices: np.ndarray) -> None:
    if self._vertices is not None and self._vertices is vertices:
      return
    vertices = np.asarray(vertices, np.float32)
    _make_current(self._gl)
    _write(
      self._face.mesh.primitives[0],
      positions=vertices,
      normals=self._normals(vertices),
    )
    self._vertices = vertices

  def camera_pose(self, yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Camera-to-world pose of a view of the framed head."""
    return orbit_pose(self.target, self.distance, yaw_deg, pitch_deg)

  def vertex_normals(self, vertices: np.ndarray) -> np.ndarray:
    """Seam-welded vertex normals of the current head's topology."""
    return self._normals(np.asarray(vertices, np.float32))

  def _pose(self, yaw_deg: float, pitch_deg: float) -> None:
    self.scene.set_pose(self._camera, self.camera_pose(yaw_deg, pitch_deg))

  def render(self, vertices: np.ndarray, yaw_deg: float, pitch_deg: float):
    """Lit, textured render.

    Returns:
      (rgba (H, W, 4) uint8 with alpha = coverage, depth (H, W) float32
      metres from the camera, 0 where empty).
    """
    self._set_vertices(vertices)
    self._pose(yaw_deg, pitch_deg)
    self._face.mesh.is_visible, self._scalar.mesh.is_visible = True, False
    self.scene.bg_color = np.zeros(4)
    rgba, depth = self._gl.render(self.scene, flags=pyrender.RenderFlags.RGBA)
    return rgba, depth

  def render_scalar(
    self,
    vertices: np.ndarray,
    values: np.ndarray,
    yaw_deg: float,
    pitch_deg: float,
  ) -> np.ndarray:
    """Unlit render of per-vertex values in [0, 1] on black: (H, W) uint8."""
    vertices = np.asarray(vertices, np.float32)
    v = np.clip(np.asarray(values, np.float32), 0.0, 1.0)
    colour = np.repeat(v[:, None], 4, axis=1)
    colour[:, 3] = 1.0
    _make_current(self._gl)
    _write(self._scalar.mesh.primitives[0], positions=vertices, color_0=colour)
    self._pose(yaw_deg, pitch_deg)
    self._face.mesh.is_visible, self._scalar.mesh.is_visible = False, True
    self.scene.bg_color = np.array([0.0, 0.0, 0.0, 1.0])
    rgb, _ = self._gl.render(self.scene, flags=pyrender.RenderFlags.FLAT)
    self._face.mesh.is_visible = True
    return rgb[..., 0].copy()


def _make_current(gl: pyrender.OffscreenRenderer) -> None:
  """Buffer uploads need the context current; the first render creates the
  GL objects, so upload only after it (pyrender makes the context current
  in `render`, and keeps it current afterwards in this process).
  """
  gl._platform.make_current()
