"""AU(t) on the synth head: one rendered frame per AU vector.

A `ClipRenderer` prepares one identity once (head shape, UV texture,
lighting, camera framing and a static background: the same recipe, random
streams and bytes as identity `identity` of `synth.pipeline` with the same
settings, so its neutral frame is that dataset's neutral image of the view)
and then renders any number of AU sequences on it. Per frame only the
vertices change: AU intensities are continuous here (the rig's blendshape
model is linear, an AU at intensity x of max K adds x / K of its basis), so
one matrix product turns a (T, K) sequence into (T, V, 3) offsets.

Loads the GL stack (pyrender): import this module only in processes that
render, never next to TensorFlow (tfds_3dpain/synthetic.py explains).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from synth import background as background_lib
from synth import identity as identity_lib
from synth import pipeline, render
from synth.config import ConfigError, SynthConfig
from synth.sequences import aus, clipset

_OFFSET_CHUNK = 64


class ClipRenderer:
  """Renders AU sequences on one identity from one view.

  Args:
    identity: synth identity index (a subject renders as its subject_id).
    view: an index into config.views, or a (yaw_deg, pitch_deg) pair.
    config: rendering settings (clipset.clip_config()); resolution is the
      frame side, seed picks the identity population.
  """

  def __init__(self, identity: int, view: int | tuple[float, float] = 0,
               config: SynthConfig | None = None):
    self.config = config or clipset.clip_config()
    if self.config.background not in ("procedural", "none"):
      raise ConfigError("clips need a static background: 'procedural' or "
                        f"'none', got {self.config.background!r}")
    self.identity = int(identity)
    self.view_index, (self.yaw_deg, self.pitch_deg) = _view(self.config,
                                                            view)
    self._ctx = pipeline.identity_context(self.config)
    ident = identity_lib.sample_identity(self.identity, self.config.seed)
    self._neutral_vertices = identity_lib.neutral_vertices(self._ctx.head,
                                                           ident)
    self._maps = pipeline.identity_texture(self._ctx, self.config, ident,
                                   self._neutral_vertices)
    self._background = _background(self.config, self.identity,
                                   self.view_index)
    self._face_node = None
    self._basis = np.stack([self._ctx.rig.basis(a).reshape(-1)
                            for a in aus.SEQ_AUS])  # (K, V * 3)
    self.neutral = self.render(np.zeros((1, aus.NUM_AUS), np.float32))[0]

  @property
  def size(self) -> int:
    return self.config.resolution

  def _activate(self) -> render.FaceRenderer:
    # The GL renderer is shared by the process (synth.pipeline caches it):
    # upload this head again when anything else set one since.
    r = self._ctx.renderer
    if self._face_node is None or r._face is not self._face_node:
      tex, rough = self._maps
      r.set_head(self._ctx.head.faces, self._ctx.painter.atlas.uvs, tex,
                 self._neutral_vertices, rough)
      r.set_lighting(pipeline.lighting_of(self.config, self.identity))
      framed = pipeline.framed_vertices(self._neutral_vertices,
                                        self._ctx.head)
      r.frame(framed, self.config.framing)
      self._face_node = r._face
    return r

  def vertices(self, au: np.ndarray) -> np.ndarray:
    """(T, V, 3) float32 meshes of a (T, NUM_AUS) sequence."""
    au = _check_au(au)
    weights = au / aus.AU_MAX
    offsets = weights @ self._basis
    return (self._neutral_vertices.reshape(1, -1) + offsets).reshape(
        len(au), -1, 3).astype(np.float32)

  def render(self, au: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of a (T, NUM_AUS) AU sequence."""
    au = _check_au(au)
    r = self._activate()
    soft = self.config.msaa_samples == 0
    frames = np.empty((len(au), self.size, self.size, 3), np.uint8)
    for start in range(0, len(au), _OFFSET_CHUNK):
      meshes = self.vertices(au[start:start + _OFFSET_CHUNK])
      for i, mesh in enumerate(meshes):
        rgba = r.render(mesh, self.yaw_deg, self.pitch_deg)[0]
        frames[start + i] = background_lib.composite(rgba, self._background,
                                                     soft)
    return frames


def render_clip(au: np.ndarray, identity: int = 0,
                view: int | tuple[float, float] = 0, size: int = 64,
                seed: int = 0) -> np.ndarray:
  """Renders a (T, NUM_AUS) AU sequence: (T, size, size, 3) uint8.

  For several clips of one identity, keep a ClipRenderer instead (the
  identity's texture is painted once per renderer).
  """
  renderer = ClipRenderer(identity, view, clipset.clip_config(size, seed))
  return renderer.render(au)


def render_subject_clips(spec: clipset.ClipSetConfig, subject_id: int
                         ) -> list[clipset.Clip]:
  """clipset.plan_subject's clips with their frames and neutral images."""
  config = spec.render_config()
  renderers: dict[int, ClipRenderer] = {}
  out = []
  for clip in clipset.plan_subject(spec, subject_id):
    if clip.view not in renderers:
      renderers[clip.view] = ClipRenderer(subject_id, clip.view, config)
    r = renderers[clip.view]
    out.append(dataclasses.replace(clip, frames=r.render(clip.au),
                                   neutral=r.neutral))
  return out


def _view(config: SynthConfig, view) -> tuple[int, tuple[float, float]]:
  if isinstance(view, int | np.integer) and not isinstance(view, bool):
    if not 0 <= view < config.num_views:
      raise ValueError(f"view {view} is not one of the config's "
                       f"{config.num_views} views {config.views}")
    return int(view), tuple(config.views[view])
  try:
    yaw, pitch = (float(v) for v in view)
  except (TypeError, ValueError):
    raise ValueError(f"view must be a view index or a (yaw_deg, pitch_deg) "
                     f"pair, got {view!r}") from None
  return 0, (yaw, pitch)


def _background(config: SynthConfig, identity: int, view: int):
  """The static background: the neutral image's, as synth.pipeline draws
  it for (identity, expression 0, view)."""
  if config.background == "none":
    return None
  rng = pipeline.stream_rng(
      config, identity, pipeline.BACKGROUND_STREAM, 0, view)
  return background_lib.procedural_background(rng, config.resolution)


def _check_au(au) -> np.ndarray:
  au = np.asarray(au, np.float32)
  if au.ndim != 2 or au.shape[1] != aus.NUM_AUS:
    raise ValueError(f"expected AUs of shape (T, {aus.NUM_AUS}) in order "
                     f"{aus.SEQ_AUS}, got {au.shape}")
  if not np.all(np.isfinite(au)) or au.min() < 0 or np.any(au > aus.AU_MAX):
    raise ValueError("AU intensities must be finite and within their "
                     "ranges (0..5, AU43 0..1)")
  return au
