"""Optional diffusers backends: depth-guided face painting and inpainting.

Both follow the paper's stages (reference.md §A.1, stages 2-4 and 8) with
open pipelines, and both load weights only from a local directory the user
names (`from_pretrained(dir, local_files_only=True)`): nothing is ever
downloaded. Supported pipeline folders (as written by `save_pretrained`):

- texture: `StableDiffusionControlNetPipeline` with a depth ControlNet, or
  `StableDiffusionDepth2ImgPipeline` (the procedural render is its init
  image). The frontal painting is projected into the UV texture texel by
  texel; texels the frontal camera cannot see keep the procedural albedo,
  colour-matched to the painting.
- background: `StableDiffusionInpaintPipeline`, repainting everything but
  the face (mask = 1 - render alpha); the face pixels are pasted back
  afterwards, so labels never depend on what the inpainter did to the face.

torch and diffusers are imported lazily: the default procedural pipeline
never needs them.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from synth import records
from synth.config import ConfigError

TEXTURE_PIPELINES = (
  "StableDiffusionControlNetPipeline",
  "StableDiffusionDepth2ImgPipeline",
)
INPAINT_PIPELINES = ("StableDiffusionInpaintPipeline",)
_AGE = {"young": "young", "middle": "middle-aged", "old": "elderly"}
_GENDER = {"female": "woman", "male": "man"}
_ETHNICITY = {"african": "Black", "asian": "East Asian", "caucasian": "white"}
SCENES = (
  "a cozy living room",
  "an office",
  "a hospital room",
  "a park",
  "a kitchen",
  "a library",
  "a city street at dusk",
  "a bedroom",
  "a waiting room",
  "a garden",
)
NEGATIVE = "cartoon, drawing, painting, blurry, deformed, text, watermark"


class DiffusionWeightsError(ConfigError):
  """The local diffusers weights are missing or unusable."""


def pipeline_class_name(weights_dir: str, allowed: tuple[str, ...]) -> str:
  """Checks a local pipeline folder without loading it.

  Raises:
    DiffusionWeightsError: the folder is missing, is not a saved diffusers
      pipeline, or holds a pipeline class this backend cannot use.
  """
  hint = (
    "Save a pipeline there with `pipe.save_pretrained(DIR)` (weights "
    "are never downloaded by synth)."
  )
  if not weights_dir or not os.path.isdir(weights_dir):
    raise DiffusionWeightsError(
      f"diffusion weights directory {weights_dir!r} does not exist. {hint}"
    )
  index = os.path.join(weights_dir, "model_index.json")
  try:
    with open(index, encoding="utf-8") as f:
      name = json.load(f).get("_class_name")
  except (OSError, json.JSONDecodeError, AttributeError) as e:
    raise DiffusionWeightsError(
      f"{weights_dir!r} is not a diffusers pipeline folder (cannot read "
      f"model_index.json: {e}). {hint}"
    ) from None
  if name not in allowed:
    raise DiffusionWeightsError(
      f"{weights_dir!r} holds a {name}; this backend needs one of "
      f"{', '.join(allowed)}"
    )
  return name


def load_pipeline(weights_dir: str, allowed: tuple[str, ...]):
  """Loads a local pipeline (CUDA if available), offline only."""
  name = pipeline_class_name(weights_dir, allowed)
  import diffusers
  import torch

  with open(os.path.join(weights_dir, "model_index.json")) as f:
    index = json.load(f)
  # Components saved as None (no safety checker, no depth estimator: we
  # pass depth maps ourselves) must be passed as None again.
  absent = {
    k: None
    for k, v in index.items()
    if not k.startswith("_") and isinstance(v, list) and v[0] is None
  }
  cuda = torch.cuda.is_available()
  try:
    pipe = getattr(diffusers, name).from_pretrained(
      weights_dir, local_files_only=True, **absent
    )
  except Exception as e:  # noqa: BLE001 - any loader failure: bad folder
    raise DiffusionWeightsError(
      f"could not load the {name} in {weights_dir!r}: {e}"
    ) from None
  # Half precision on a GPU; CPU inference stays in float32.
  pipe = pipe.to("cuda", torch.float16) if cuda else pipe.to("cpu")
  pipe.set_progress_bar_config(disable=True)
  if getattr(pipe, "safety_checker", None) is not None:
    pipe.safety_checker = None  # renders of faces, not user content
  return pipe


def _generator(seed: int):
  import torch

  return torch.Generator(device="cpu").manual_seed(int(seed))


def describe(demo: records.Demographics) -> str:
  return (
    f"{_AGE[demo.age_group]} {_ETHNICITY[demo.ethnicity]} "
    f"{_GENDER[demo.gender]}"
  )


def _to_uint8(image: np.ndarray) -> np.ndarray:
  return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


class DiffusersTexture:
  """Paints the frontal face from a depth render and bakes it into UVs."""

  def __init__(self, config):
    self.pipe = load_pipeline(config.diffusion_weights, TEXTURE_PIPELINES)
    self.kind = type(self.pipe).__name__
    self.size = config.diffusion_resolution
    self.steps = config.diffusion_steps
    self.guidance = config.guidance_scale

  def paint(
    self, demo, seed: int, init_rgb: np.ndarray, depth: np.ndarray
  ) -> np.ndarray:
    """Returns the painted frontal face, (size, size, 3) uint8.

    Args:
      demo: the identity's demographics (prompt).
      seed: torch generator seed.
      init_rgb: (H, W, 3) uint8 procedural frontal render (Depth2Img init).
      depth: (H, W) float32 metres from the camera, 0 where empty.
    """
    from PIL import Image

    near = np.where(depth > 0, depth, np.inf).min()
    far = depth.max()
    disparity = np.where(
      depth > 0, (far - depth) / max(far - near, 1e-6) * 0.8 + 0.2, 0.0
    ).astype(np.float32)
    size = (self.size, self.size)
    prompt = (
      f"a close-up photo of the face of a {describe(demo)} with a "
      "neutral expression, frontal view, soft even lighting"
    )
    common = dict(
      prompt=prompt,
      negative_prompt=NEGATIVE,
      num_inference_steps=self.steps,
      guidance_scale=self.guidance,
      generator=_generator(seed),
      output_type="np",
    )
    if self.kind == "StableDiffusionControlNetPipeline":
      control = Image.fromarray(_to_uint8(disparity)).convert("RGB")
      out = self.pipe(
        image=control.resize(size), height=self.size, width=self.size, **common
      )
    else:
      import torch

      d = Image.fromarray(disparity, mode="F").resize(size)
      out = self.pipe(
        image=Image.fromarray(init_rgb).resize(size),
        depth_map=torch.from_numpy(np.array(d))[None],
        strength=0.75,
        **common,
      )
    return _to_uint8(out.images[0])


class InpaintBackground:
  """Inpaints a scene around the rendered face."""

  def __init__(self, config):
    self.pipe = load_pipeline(config.inpaint_weights, INPAINT_PIPELINES)
    self.soften = config.msaa_samples == 0
    self.size = config.diffusion_resolution
    self.steps = config.diffusion_steps
    self.guidance = config.guidance_scale

  def __call__(self, rgba: np.ndarray, demo, seed: int) -> np.ndarray:
    """Returns (H, W, 3) uint8: an inpainted scene with the face pasted."""
    from PIL import Image

    from synth import background

    h, w = rgba.shape[:2]
    grey = background.composite(rgba, np.full((h, w, 3), 128, np.uint8))
    alpha = rgba[..., 3]
    mask = Image.fromarray(255 - alpha).resize((self.size, self.size))
    rng = np.random.default_rng(seed)
    scene = SCENES[rng.integers(len(SCENES))]
    prompt = f"portrait photo of a {describe(demo)} in {scene}"
    out = self.pipe(
      prompt=prompt,
      negative_prompt=NEGATIVE,
      image=Image.fromarray(grey).resize((self.size,) * 2),
      mask_image=mask,
      height=self.size,
      width=self.size,
      num_inference_steps=self.steps,
      guidance_scale=self.guidance,
      generator=_generator(seed),
      output_type="np",
    )
    scene_img = Image.fromarray(_to_uint8(out.images[0])).resize((w, h))
    return background.composite(rgba, np.asarray(scene_img), self.soften)


def project_to_texture(
  painter,
  texture: np.ndarray,
  vertices: np.ndarray,
  normals: np.ndarray,
  image: np.ndarray,
  pose: np.ndarray,
  fov_deg: float,
  depth: np.ndarray,
) -> np.ndarray:
  """Bakes a frontal image into a UV texture, texel by texel.

  Each covered texel's point on the identity's mesh is projected with the
  camera that rendered `depth`; texels that are visible there (depth test)
  and face the camera take the image colour, blended by how squarely they
  face it. The rest keep `texture`, scaled to the painting's mean colour so
  the seam between the two is soft.

  Args:
    painter: the head's synth.texture.ProceduralTexture (atlas).
    texture: (S, S, 3) uint8 procedural texture of the identity.
    vertices, normals: (V, 3) identity neutral mesh and vertex normals.
    image: (h, w, 3) uint8 painting seen from `pose` (any size).
    pose: (4, 4) camera-to-world pose; fov_deg: its vertical field of view.
    depth: (H, W) rendered depth from `pose` (metres, 0 = empty).

  Returns:
    (S, S, 3) uint8 texture.
  """
  atlas = painter.atlas
  cov = atlas.covered
  p = atlas.interpolate(np.asarray(vertices, np.float32), painter.faces)[cov]
  n = atlas.interpolate(np.asarray(normals, np.float32), painter.faces)[cov]
  n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
  rot, eye = pose[:3, :3], pose[:3, 3]
  c = (p - eye) @ rot  # camera coordinates, camera looks down -z
  z = -c[:, 2]
  f = 1.0 / math.tan(math.radians(fov_deg) / 2)
  zs = np.maximum(z, 1e-6)
  u = (f * c[:, 0] / zs + 1) / 2  # [0, 1] across, left to right
  v = (1 - f * c[:, 1] / zs) / 2  # [0, 1] down
  hd, wd = depth.shape
  inside = (z > 0) & (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
  rows = np.clip((v * hd).astype(int), 0, hd - 1)
  cols = np.clip((u * wd).astype(int), 0, wd - 1)
  seen = depth[rows, cols]
  visible = inside & (seen > 0) & (np.abs(seen - z) < 0.002 + 0.004 * z)
  view = eye - p
  view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-9)
  facing = np.sum(n * view, axis=1)
  weight = (visible * np.clip((facing - 0.3) / 0.35, 0, 1))[:, None]
  hi, wi = image.shape[:2]
  painted = image[
    np.clip((v * hi).astype(int), 0, hi - 1),
    np.clip((u * wi).astype(int), 0, wi - 1),
  ].astype(np.float32)
  base = texture[cov].astype(np.float32)
  strong = weight[:, 0] > 0.5
  if strong.any():  # match the unseen albedo to the painting's colour
    gain = painted[strong].mean(0) / np.maximum(base[strong].mean(0), 1.0)
    base = base * np.clip(gain, 0.5, 2.0)
  out = base * (1 - weight) + painted * weight
  texels = np.clip(out + 0.5, 0, 255).astype(np.uint8)
  return texels[atlas.nearest]
