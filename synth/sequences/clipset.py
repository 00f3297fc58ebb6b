"""Short labelled pain clips: which subjects, which windows, which views.

A `ClipSetConfig` describes a set of rendered clips (the `3dpain/sequences`
TFDS config): each subject is simulated once under a stimulus programme
(`source_s` seconds), `clips_per_subject` windows of `clip_s` seconds are
cut from it (most around stimulus transitions, where the face moves), and
each clip is shown from one of the views. `plan_subject` does all of that
but the rendering, without the GL stack; `synth.sequences.clips.
render_subject_clips` adds the frames. Everything is drawn from
SeedSequence([seed, stream, subject_id]): a subject's clips depend on
nothing else.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from synth.config import DEFAULT_VIEWS, ConfigError, SynthConfig
from synth.sequences import aus, programmes, response, windowing
from synth.sequences import subject as subject_lib

# Share of clips placed near a stimulus transition (the rest: anywhere).
TRANSITION_FRACTION = 0.75


def clip_config(size: int = 64, seed: int = 0, texture_size: int = 256,
                background: str = "procedural", **fields) -> SynthConfig:
  """The SynthConfig clips render with: synth's head, views and lighting.

  Args:
    size: frame side in pixels.
    seed: identity population seed (subject i renders as identity i).
    texture_size: UV texture side (256 is plenty below 128 px frames).
    background: 'procedural' or 'none' (clips need a static background).
    **fields: any other SynthConfig field (views, fov_deg, ...).
  """
  if background not in ("procedural", "none"):
    raise ConfigError(f"clips need a static background: 'procedural' or "
                      f"'none', got {background!r}")
  return SynthConfig(num_identities=1, seed=seed, resolution=size,
                     texture_size=texture_size, background=background,
                     **fields)


@dataclasses.dataclass(frozen=True)
class ClipSetConfig:
  """A set of rendered clips (see the module docstring).

  Attributes:
    num_subjects: subjects 0..num_subjects-1 of population `seed`.
    clips_per_subject: clips cut from each subject's simulation.
    clip_s: clip length in seconds (frames = round(clip_s * FPS)).
    source_s: length of each subject's simulation in seconds.
    programme: stimulus programme (programmes.PROGRAMMES).
    seed: seed of subjects, stimuli, noise, clip placement and identities.
    resolution: frame side in pixels.
    texture_size: UV texture side in texels.
    views: (yaw_deg, pitch_deg) per view; each clip picks one.
    background: 'procedural' or 'none'.
    jpeg_quality: JPEG quality of stored frames.
  """

  num_subjects: int
  clips_per_subject: int = 4
  clip_s: float = 3.0
  source_s: float = 120.0
  programme: str = "biovid"
  seed: int = 0
  resolution: int = 64
  texture_size: int = 256
  views: tuple[tuple[float, float], ...] = DEFAULT_VIEWS
  background: str = "procedural"
  jpeg_quality: int = 90

  def __post_init__(self):
    for name, lo in (("num_subjects", 1), ("clips_per_subject", 1),
                     ("seed", 0)):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(f"{name} must be an int >= {lo}, got {v!r}")
    if not 0 < self.clip_s <= self.source_s:
      raise ConfigError(f"need 0 < clip_s <= source_s, got clip_s="
                        f"{self.clip_s!r}, source_s={self.source_s!r}")
    if self.programme not in programmes.PROGRAMMES:
      raise ConfigError(f"unknown programme {self.programme!r}; choose one "
                        f"of {programmes.PROGRAMMES}")
    object.__setattr__(self, "views", tuple(
        (float(y), float(p)) for y, p in self.views))
    self.render_config()  # Validates resolution, views, background, ...

  @property
  def clip_frames(self) -> int:
    return int(round(self.clip_s * aus.FPS))

  @property
  def num_views(self) -> int:
    return len(self.views)

  def render_config(self) -> SynthConfig:
    return clip_config(self.resolution, self.seed, self.texture_size,
                       self.background, views=self.views,
                       jpeg_quality=self.jpeg_quality)

  def to_dict(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out["views"] = [list(v) for v in self.views]
    return out


@dataclasses.dataclass(frozen=True)
class Clip:
  """One clip: a window of a subject's sequence from one view.

  Attributes:
    key: "subj#####_clip##", unique and sortable.
    subject_id: the subject (and rendering identity).
    clip: index among the subject's clips.
    view, yaw_deg, pitch_deg: the camera.
    start_frame: first frame in the subject's simulation.
    au: (T, NUM_AUS) float32; pspi, stimulus (drive), stimulus_values: (T,)
      float32; level: (T,) int8 (see response.SequenceRecord).
    expressiveness, emotion: the subject's conditioning scalars.
    frames: (T, H, W, 3) uint8, None until rendered.
    neutral: (H, W, 3) uint8, the subject's neutral face from this view.
  """

  key: str
  subject_id: int
  clip: int
  view: int
  yaw_deg: float
  pitch_deg: float
  start_frame: int
  au: np.ndarray
  pspi: np.ndarray
  stimulus: np.ndarray
  stimulus_values: np.ndarray
  level: np.ndarray
  expressiveness: float
  emotion: int
  frames: np.ndarray | None = None
  neutral: np.ndarray | None = None


def plan_subject(spec: ClipSetConfig, subject_id: int) -> list[Clip]:
  """The clips of one subject, labelled but not rendered (frames None)."""
  rec = response.simulate_subject(spec.seed, subject_id, spec.programme,
                                  spec.source_s)
  length = spec.clip_frames
  rng = subject_lib.rng_for(spec.seed, subject_lib.CLIP_STREAM, subject_id)
  near = windowing.transition_starts(rec, length, before=length,
                                     after=length, every=1)
  out = []
  for c in range(spec.clips_per_subject):
    if near.size and rng.uniform() < TRANSITION_FRACTION:
      start = int(rng.choice(near))
    else:
      start = int(rng.integers(0, rec.num_frames - length + 1))
    view = int(rng.integers(spec.num_views))
    window = slice(start, start + length)
    out.append(Clip(
        key=f"subj{subject_id:05d}_clip{c:02d}",
        subject_id=int(subject_id), clip=c, view=view,
        yaw_deg=spec.views[view][0], pitch_deg=spec.views[view][1],
        start_frame=start,
        au=rec.au[window], pspi=rec.pspi[window],
        stimulus=rec.stimulus[window],
        stimulus_values=rec.stimulus_values[window],
        level=rec.level[window],
        expressiveness=rec.expressiveness, emotion=rec.emotion))
  return out
