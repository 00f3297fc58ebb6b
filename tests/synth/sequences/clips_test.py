"""AU(t) drives the synth head: continuous intensities, the rig's meshes at
integer ones, and the identity's neutral image as synth.pipeline makes it."""

import numpy as np
import pytest

from synth import pipeline
from synth.sequences import aus, clips, clipset

SIZE, IDENTITY = 32, 4


@pytest.fixture(scope="module")
def renderer():
  config = clipset.clip_config(SIZE, seed=1, texture_size=64)
  return clips.ClipRenderer(IDENTITY, view=1, config=config)


def _au(**values):
  frame = np.zeros(aus.NUM_AUS, np.float32)
  for name, v in values.items():
    frame[aus.AU_INDEX[name]] = v
  return frame


def test_meshes_follow_the_rig_and_are_linear_in_intensity(renderer, au_rig):
  neutral = renderer.vertices(np.zeros((1, aus.NUM_AUS)))[0]
  seq = np.stack([_au(AU4=3, AU10=1, AU43=1), _au(AU4=1.5, AU10=0.5)])
  meshes = renderer.vertices(seq)
  rigged = au_rig.deform(neutral, {"AU4": 3, "AU10": 1, "AU43": 1})
  np.testing.assert_allclose(meshes[0], rigged, atol=1e-6)
  half = np.stack([_au(AU4=3, AU10=1)])
  np.testing.assert_allclose(meshes[1] - neutral,
                             0.5 * (renderer.vertices(half)[0] - neutral),
                             atol=1e-6)


def test_frames_start_neutral_and_change_with_pain(renderer):
  levels = np.array([0.0, 1.5, 3.0, 5.0])
  seq = np.stack([_au(AU4=v, AU6=v, AU7=v, AU9=v, AU10=v) for v in levels])
  frames = renderer.render(seq)
  assert frames.shape == (4, SIZE, SIZE, 3) and frames.dtype == np.uint8
  np.testing.assert_array_equal(frames[0], renderer.neutral)
  change = [np.abs(f.astype(int) - renderer.neutral).mean() for f in frames]
  assert change[0] == 0 and np.all(np.diff(change) > 0)
  with pytest.raises(ValueError, match="shape"):
    renderer.render(np.zeros((3, 6)))
  with pytest.raises(ValueError, match="ranges"):
    renderer.render(np.full((1, aus.NUM_AUS), 6.0))


def test_neutral_frame_is_the_datasets_neutral_image(renderer):
  records = pipeline.generate_identity(renderer.config, IDENTITY)
  neutral = next(r for r in records if r.is_neutral and r.view == 1)
  np.testing.assert_array_equal(renderer.neutral, neutral.image)
  # Another identity in the shared GL context: each renderer still draws
  # its own head.
  other = clips.ClipRenderer(IDENTITY + 1, view=1, config=renderer.config)
  assert np.abs(other.neutral.astype(int) - renderer.neutral).mean() > 5
  again = renderer.render(np.zeros((1, aus.NUM_AUS)))[0]
  np.testing.assert_array_equal(again, renderer.neutral)
