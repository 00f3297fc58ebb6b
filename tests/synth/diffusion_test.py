"""diffusers backends with tiny random pipelines built and saved right here.

Nothing is downloaded: the models are randomly initialised at toy sizes
(stack.md §12), saved with `save_pretrained` to tmp_path and loaded back by
the backends with `local_files_only=True`, exactly as user weights would be.
"""

import json

import numpy as np
import pytest
from scipy import ndimage

from synth import diffusion, pipeline, render, texture
from synth.config import SynthConfig

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
  """Toy models run fastest on one thread (OpenMP spin-waits dominate on
  a busy 2-core machine: 3.4 s vs 0.19 s per inpainting call)."""
  before = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(before)


def _tokenizer():
  """A byte-level CLIP tokenizer without a download (transformers 5)."""
  from transformers.convert_slow_tokenizer import bytes_to_unicode

  chars = list(bytes_to_unicode().values())
  vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
  for c in chars + [c + "</w>" for c in chars]:
    vocab[c] = len(vocab)
  return transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _parts(unet_in=4):
  torch.manual_seed(0)
  blocks = dict(block_out_channels=(8, 16), norm_num_groups=2)
  attn = dict(
    layers_per_block=1,
    cross_attention_dim=32,
    attention_head_dim=2,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
  )
  unet = diffusers.UNet2DConditionModel(
    in_channels=unet_in,
    out_channels=4,
    sample_size=16,
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    **blocks,
    **attn,
  )
  vae = diffusers.AutoencoderKL(
    block_out_channels=[8, 16],
    norm_num_groups=2,
    latent_channels=4,
    down_block_types=["DownEncoderBlock2D"] * 2,
    up_block_types=["UpDecoderBlock2D"] * 2,
  )
  text = transformers.CLIPTextModel(
    transformers.CLIPTextConfig(
      hidden_size=32,
      intermediate_size=37,
      num_attention_heads=4,
      num_hidden_layers=2,
      vocab_size=514,
      bos_token_id=0,
      eos_token_id=1,
      pad_token_id=1,
    )
  )
  parts = dict(
    vae=vae,
    text_encoder=text,
    tokenizer=_tokenizer(),
    unet=unet,
    scheduler=diffusers.DDIMScheduler(steps_offset=1),
  )
  return parts, blocks, attn


def _save(kind, path):
  if kind == "controlnet":
    parts, blocks, attn = _parts()
    net = diffusers.ControlNetModel(
      conditioning_embedding_out_channels=(8, 16), **blocks, **attn
    )
    pipe = diffusers.StableDiffusionControlNetPipeline(
      controlnet=net,
      safety_checker=None,
      feature_extractor=None,
      requires_safety_checker=False,
      **parts,
    )
  elif kind == "depth2img":
    parts, _, _ = _parts(unet_in=5)
    pipe = diffusers.StableDiffusionDepth2ImgPipeline(
      depth_estimator=None, feature_extractor=None, **parts
    )
  else:
    parts, _, _ = _parts(unet_in=9)
    pipe = diffusers.StableDiffusionInpaintPipeline(
      safety_checker=None,
      feature_extractor=None,
      requires_safety_checker=False,
      **parts,
    )
  pipe.save_pretrained(str(path))
  return str(path)


def _config(**kw):
  return SynthConfig(
    num_identities=1,
    resolution=32,
    texture_size=128,
    diffusion_resolution=32,
    diffusion_steps=2,
    **kw,
  )


@pytest.fixture(scope="module")
def procedural():
  return pipeline.generate_identity(_config(), 0)


@pytest.mark.parametrize("kind", ["controlnet", "depth2img"])
def test_diffusers_texture_paints_the_face(tmp_path, procedural, kind):
  weights = _save(kind, tmp_path / kind)
  cfg = _config(texture="diffusers", diffusion_weights=weights)
  recs = pipeline.generate_identity(cfg, 0)
  again = pipeline.generate_identity(cfg, 0)
  for a, b, p in zip(recs, again, procedural, strict=True):
    np.testing.assert_array_equal(a.image, b.image)  # seeded
    np.testing.assert_array_equal(a.au, p.au)  # labels unchanged
    np.testing.assert_array_equal(a.heatmap, p.heatmap)
  # The frontal face took the painting's colours.
  diff = np.abs(recs[0].image.astype(int) - procedural[0].image).mean(-1)
  centre = diff[10:22, 10:22]
  assert centre.mean() > 5


def test_projection_replaces_only_visible_texels(head):
  """A uniformly green painting lands on the front of the face only."""
  painter = texture.ProceduralTexture(head, 128)
  r = render.FaceRenderer(64)
  tex = np.full((128, 128, 3), 100, np.uint8)
  r.set_head(head.faces, painter.atlas.uvs, tex, head.vertices)
  r.frame(head.vertices[head.parts["skin"]], 0.92)
  _, depth = r.render(head.vertices, 0.0, 0.0)
  green = np.zeros((40, 40, 3), np.uint8)
  green[..., 1] = 200
  out = diffusion.project_to_texture(
    painter,
    tex,
    head.vertices,
    r.vertex_normals(head.vertices),
    green,
    r.camera_pose(0.0, 0.0),
    r.fov_deg,
    depth,
  )
  texels = out[painter.atlas.covered].astype(int)
  z = painter.pos[:, 2]
  front = painter.masks["skin"] & (z > np.percentile(z, 95))
  back = painter.masks["skin"] & (z < np.percentile(z, 20))
  green = (texels[:, 1] > 190) & (texels[:, 0] < 10)
  assert front.sum() > 100 and green[front].mean() > 0.8
  # The back of the head keeps the albedo, only colour-matched.
  assert np.all(texels[back, 0] == texels[back, 0][0])
  r.close()


def test_inpaint_background_keeps_the_face(tmp_path, procedural):
  weights = _save("inpaint", tmp_path / "inpaint")
  cfg = _config(background="inpaint", inpaint_weights=weights)
  recs = pipeline.generate_identity(cfg, 0)
  bare = pipeline.generate_identity(_config(background="none"), 0)
  for rec, ref, plain in zip(recs[:3], procedural[:3], bare[:3], strict=True):
    face = plain.image.sum(-1) > 0
    # Interior face pixels are the render; the surroundings were repainted
    # (the 3x3 edge antialiasing touches one pixel on each side).
    inner = ndimage.binary_erosion(face, np.ones((3, 3), bool))
    np.testing.assert_array_equal(rec.image[inner], ref.image[inner])
    assert np.abs(rec.image[~face].astype(int) - ref.image[~face]).mean() > 3


def test_missing_or_wrong_weights_are_clear_errors(tmp_path):
  with pytest.raises(diffusion.DiffusionWeightsError, match="does not exist"):
    pipeline.check_inputs(
      _config(texture="diffusers", diffusion_weights=tmp_path / "none")
    )
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(diffusion.DiffusionWeightsError, match="model_index"):
    pipeline.check_inputs(_config(texture="diffusers", diffusion_weights=empty))
  wrong = tmp_path / "wrong"
  wrong.mkdir()
  (wrong / "model_index.json").write_text(
    json.dumps({"_class_name": "StableDiffusionInpaintPipeline"})
  )
  with pytest.raises(diffusion.DiffusionWeightsError, match="ControlNet"):
    pipeline.check_inputs(_config(texture="diffusers", diffusion_weights=wrong))
  # A folder that names the right class but holds no weights fails to load.
  broken = tmp_path / "broken"
  broken.mkdir()
  (broken / "model_index.json").write_text(
    json.dumps({"_class_name": "StableDiffusionInpaintPipeline"})
  )
  with pytest.raises(diffusion.DiffusionWeightsError, match="could not load"):
    diffusion.load_pipeline(str(broken), diffusion.INPAINT_PIPELINES)
