"""The docs figures: the excerpt starts before a level-4 plateau of an
expressive subject, and both files are written (frames faked: no GL)."""

import numpy as np
from PIL import Image

from synth.sequences import aus, figure


def test_excerpt_and_files(tmp_path):
  rec, start = figure.pick_excerpt(0, 6.0)
  assert rec.expressiveness >= 8.0
  lead = int(figure.LEAD_S * aus.FPS)
  assert rec.level[start + lead] == 4 and rec.level[start + lead - 1] != 4
  frames = np.random.default_rng(0).integers(
      0, 255, (int(6.0 * aus.FPS), 24, 24, 3), dtype=np.uint8)
  png, gif = tmp_path / "strip.png", tmp_path / "clip.gif"
  figure.strip_figure(rec, start, frames, str(png))
  figure.gif(rec, start, frames, str(gif), every=3)
  assert Image.open(png).size[0] > 500
  assert Image.open(gif).n_frames == len(range(0, len(frames), 3))
