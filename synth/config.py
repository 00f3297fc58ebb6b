"""SynthConfig: every knob of the 3DPain generator, validated once.

One frozen dataclass describes a dataset. It is written next to the data as
`synth_config.json`, and a resumed run must present the same configuration
(except a larger `num_identities`, which only appends identities), so the
bytes of an identity depend only on this object and its index.

Camera convention (degrees): `yaw` > 0 moves the camera to the subject's
left (the image shows more of the left cheek), `pitch` > 0 raises the camera
so it looks down at the face. The default views follow the released samples
(reference.md §A.1): view 0 is "frontal" but slightly from above, views 1 and
2 are yawed 30 degrees to either side.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from typing import Any

from synth import records
from synth.cli_errors import UserError

TEXTURE_BACKENDS = ("procedural", "diffusers")
BACKGROUND_BACKENDS = ("procedural", "inpaint", "none")
HEAD_BACKENDS = ("makehuman", "flame")
IMAGE_FORMATS = ("png", "jpeg")
DEFAULT_VIEWS = ((0.0, 8.0), (-30.0, 5.0), (30.0, 5.0))
# AU43 (eyes closed) is binary; every other AU is an intensity 0..5.
AU_LIMITS = {name: (1 if name == "AU43" else 5) for name in records.AU_NAMES}


class ConfigError(UserError):
  """A configuration value is invalid; the message names it and the fix."""


def _range(name: str, value: Any, lo: float, hi: float) -> tuple[float, float]:
  """Validates a (min, max) pair inside [lo, hi] and returns it as floats."""
  try:
    a, b = (float(v) for v in value)
  except (TypeError, ValueError):
    raise ConfigError(
      f"{name} must be a (min, max) pair, got {value!r}"
    ) from None
  if not (lo <= a <= b <= hi):
    raise ConfigError(
      f"{name} must satisfy {lo} <= min <= max <= {hi}, got {value!r}"
    )
  return (a, b)


def parse_au_override(value: Any) -> tuple[tuple[str, int], ...]:
  """Normalises an AU override to sorted ((name, intensity), ...) pairs.

  Accepts a mapping, a sequence of pairs or a string "AU4=3,AU43=1". Raises
  ConfigError naming an unknown AU or an intensity out of its range.
  """
  if value is None or value == "":
    return ()
  if isinstance(value, str):
    pairs = []
    for item in value.split(","):
      name, sep, num = item.partition("=")
      if not sep:
        raise ConfigError(
          f"AU override {item!r} must look like NAME=INTENSITY, e.g. AU4=3"
        )
      pairs.append((name.strip(), num.strip()))
  elif isinstance(value, Mapping):
    pairs = list(value.items())
  else:
    pairs = [tuple(p) for p in value]
  out = {}
  for name, num in pairs:
    if name not in AU_LIMITS:
      raise ConfigError(
        f"unknown AU {name!r} in AU override; known AUs: "
        f"{', '.join(records.AU_NAMES)}"
      )
    try:
      level = int(num)
      if level != float(num):
        raise ValueError
    except (TypeError, ValueError):
      raise ConfigError(
        f"AU override {name}={num!r} is not an integer"
      ) from None
    if not 0 <= level <= AU_LIMITS[name]:
      raise ConfigError(
        f"AU override {name}={level} is out of range: {name} takes "
        f"integers 0..{AU_LIMITS[name]}"
      )
    out[name] = level
  return tuple(
    sorted(out.items(), key=lambda kv: records.AU_NAMES.index(kv[0]))
  )


@dataclasses.dataclass(frozen=True)
class SynthConfig:
  """How to synthesise a 3DPain-style dataset (see module docstring)."""

  # Number of identities (the paper has 2,500).
  num_identities: int
  # Master seed; identity i is seeded by SeedSequence([seed, i, ...]).
  seed: int = 0
  # Square image side in pixels (images and heatmaps).
  resolution: int = 256
  # (yaw, pitch) in degrees per view; view 0 also frames the heatmap.
  views: tuple[tuple[float, float], ...] = DEFAULT_VIEWS
  # Vertical field of view of the pinhole camera, degrees.
  fov_deg: float = 18.0
  # Fraction of the image the head's larger side (height or width) spans.
  framing: float = 0.92
  # Framebuffer multisampling. 0: none, the silhouette is antialiased when
  # compositing (4x MSAA doubles the render cost on CPU rasterisers).
  msaa_samples: int = 0
  # PSPI distribution of the 10 pain expressions (synth.pain_levels).
  pain_distribution: str = "uniform"
  # AUs forced on every pain expression, e.g. (("AU43", 1),); PSPI follows.
  au_override: tuple[tuple[str, int], ...] = ()
  # Head model backend and, for FLAME (or a custom MakeHuman), its file.
  head: str = "makehuman"
  head_path: str | None = None
  # FLAME only: npz of ARKit-named (V, 3) blendshapes (needed by the AU rig)
  # and npz texture space ('vt', 'ft'); see synth.head.load_head_model.
  head_blendshapes: str | None = None
  head_texture_space: str | None = None
  # Skin albedo: procedural UV texture, or a local diffusers pipeline.
  texture: str = "procedural"
  # Side of the per-identity UV texture in texels.
  texture_size: int = 512
  # Background: procedural gradients/blobs, local diffusers inpainting, none.
  background: str = "procedural"
  # Local diffusers pipeline directories (never downloaded).
  diffusion_weights: str | None = None
  inpaint_weights: str | None = None
  # Side the diffusers backends work at (multiple of 8), denoising steps
  # and classifier-free guidance.
  diffusion_resolution: int = 512
  diffusion_steps: int = 20
  guidance_scale: float = 7.5
  # Lighting, drawn once per identity: key light intensity, its direction
  # (azimuth around the face, elevation above it, degrees), the fill light
  # as a fraction of the key, the ambient term and a warm/cool tint.
  key_intensity: tuple[float, float] = (2.6, 4.0)
  key_azimuth_deg: tuple[float, float] = (-50.0, 50.0)
  key_elevation_deg: tuple[float, float] = (5.0, 45.0)
  fill_ratio: tuple[float, float] = (0.25, 0.6)
  ambient: tuple[float, float] = (0.25, 0.45)
  tint: tuple[float, float] = (-0.08, 0.08)
  # Heatmap: displacement in metres that maps to 255. Fixed for the whole
  # dataset so maps compare across identities (not a per-image max).
  heatmap_full_scale_m: float = 0.012
  # Image files: png (lossless) or jpeg, and their encoder settings.
  image_format: str = "png"
  png_compress_level: int = 1
  jpeg_quality: int = 95

  def __post_init__(self):
    self._check_counts()
    self._check_views()
    self._check_backends()
    object.__setattr__(self, "au_override", parse_au_override(self.au_override))
    for name, lo, hi in (
      ("key_intensity", 0.0, 50.0),
      ("key_azimuth_deg", -180.0, 180.0),
      ("key_elevation_deg", -90.0, 90.0),
      ("fill_ratio", 0.0, 2.0),
      ("ambient", 0.0, 2.0),
      ("tint", -0.5, 0.5),
    ):
      object.__setattr__(self, name, _range(name, getattr(self, name), lo, hi))

  def _check_counts(self):
    _int(self, "num_identities", 1, 10**7, "generate at least one identity")
    _int(self, "seed", 0, 2**63 - 1, "seeds are non-negative integers")
    _int(self, "resolution", 16, 4096, "e.g. 256")
    _int(self, "texture_size", 32, 8192, "e.g. 512")
    _int(self, "diffusion_steps", 1, 1000, "e.g. 20")
    _int(self, "diffusion_resolution", 16, 4096, "e.g. 512")
    if self.diffusion_resolution % 8:
      raise ConfigError(
        f"diffusion_resolution must be a multiple of 8 (the VAE "
        f"downsamples by 8), got {self.diffusion_resolution}"
      )
    _int(self, "png_compress_level", 0, 9, "zlib levels are 0..9")
    _int(self, "jpeg_quality", 1, 100, "e.g. 95")
    if self.msaa_samples not in (0, 2, 4, 8):
      raise ConfigError(
        f"msaa_samples must be 0, 2, 4 or 8, got {self.msaa_samples!r}"
      )
    for name, lo, hi in (
      ("fov_deg", 1.0, 120.0),
      ("framing", 0.1, 1.0),
      ("guidance_scale", 0.0, 50.0),
      ("heatmap_full_scale_m", 1e-6, 1.0),
    ):
      value = getattr(self, name)
      if not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ConfigError(
          f"{name} must be a number in [{lo}, {hi}], got {value!r}"
        )

  def _check_views(self):
    try:
      views = tuple((float(y), float(p)) for y, p in self.views)
    except (TypeError, ValueError):
      raise ConfigError(
        f"views must be (yaw, pitch) degree pairs, got {self.views!r}"
      ) from None
    if not 1 <= len(views) <= 16:
      raise ConfigError(f"views must hold 1..16 cameras, got {len(views)}")
    for yaw, pitch in views:
      if not (math.isfinite(yaw) and abs(yaw) <= 90):
        raise ConfigError(f"view yaw {yaw} must be within [-90, 90] degrees")
      if not (math.isfinite(pitch) and abs(pitch) <= 60):
        raise ConfigError(
          f"view pitch {pitch} must be within [-60, 60] degrees"
        )
    object.__setattr__(self, "views", views)

  def _check_backends(self):
    for name, choices in (
      ("texture", TEXTURE_BACKENDS),
      ("background", BACKGROUND_BACKENDS),
      ("head", HEAD_BACKENDS),
      ("image_format", IMAGE_FORMATS),
    ):
      if getattr(self, name) not in choices:
        raise ConfigError(
          f"{name} must be one of {', '.join(choices)}; got "
          f"{getattr(self, name)!r}"
        )
    if self.head == "flame" and not self.head_path:
      raise ConfigError("head 'flame' needs head_path (--head-path FILE)")
    if self.head != "flame" and (
      self.head_blendshapes or self.head_texture_space
    ):
      raise ConfigError(
        "head_blendshapes/head_texture_space apply to head 'flame' only"
      )
    if self.texture == "diffusers" and not self.diffusion_weights:
      raise ConfigError(
        "texture 'diffusers' needs diffusion_weights: a local directory "
        "holding a saved diffusers pipeline (--diffusion-weights DIR)"
      )
    if self.background == "inpaint" and not self.inpaint_weights:
      raise ConfigError(
        "background 'inpaint' needs inpaint_weights: a local directory "
        "holding a saved inpainting pipeline (--inpaint-weights DIR)"
      )
    for name in (
      "head_path",
      "head_blendshapes",
      "head_texture_space",
      "diffusion_weights",
      "inpaint_weights",
    ):
      value = getattr(self, name)
      if value is not None:
        object.__setattr__(self, name, os.path.abspath(os.fspath(value)))

  # ---------------------------------------------------------------- derived

  @property
  def num_views(self) -> int:
    return len(self.views)

  @property
  def image_ext(self) -> str:
    return "jpg" if self.image_format == "jpeg" else "png"

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(self)))

  def output_fingerprint(self) -> dict[str, Any]:
    """The fields that decide an identity's bytes (all but the count)."""
    out = self.to_dict()
    del out["num_identities"]
    return out

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> SynthConfig:
    """Builds a config from a JSON-like dict, rejecting unknown keys."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
      raise ConfigError(
        f"unknown config keys {unknown}; known keys: {sorted(known)}"
      )
    data = dict(data)
    if "views" in data:
      data["views"] = tuple(tuple(v) for v in data["views"])
    for key in ("au_override",):
      if isinstance(data.get(key), list):
        data[key] = tuple(tuple(v) for v in data[key])
    try:
      return cls(**data)
    except TypeError as e:  # e.g. a missing num_identities
      raise ConfigError(f"bad config: {e}") from None

  @classmethod
  def from_json(cls, path: str | os.PathLike) -> SynthConfig:
    """Reads a config file written by `to_dict` (or by hand)."""
    try:
      with open(path, encoding="utf-8") as f:
        data = json.load(f)
    except FileNotFoundError:
      raise ConfigError(
        f"config file {os.fspath(path)!r} does not exist"
      ) from None
    except json.JSONDecodeError as e:
      raise ConfigError(
        f"config file {os.fspath(path)!r} is not JSON: {e}"
      ) from None
    if not isinstance(data, dict):
      raise ConfigError(f"config file {os.fspath(path)!r} must hold an object")
    return cls.from_dict(data)


def _int(cfg: SynthConfig, name: str, lo: int, hi: int, hint: str) -> None:
  value = getattr(cfg, name)
  if isinstance(value, bool) or not isinstance(value, int):
    raise ConfigError(f"{name} must be an integer, got {value!r}")
  if not lo <= value <= hi:
    raise ConfigError(f"{name} must be in [{lo}, {hi}] ({hint}), got {value}")
