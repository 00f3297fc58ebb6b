"""The docs figures of pain sequences: a frame strip over AU(t), and a GIF.

  python -m synth.sequences.figure --out docs

writes `sequence_strip.png` (rendered frames of a simulated subject above
its stimulus, PSPI and pain-core AU curves, the frames' times marked) and
`sequence_clip.gif` (the same excerpt, animated, PSPI written on it).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image, ImageDraw

from synth.sequences import aus, clipset, response
from synth.sequences import subject as subject_lib

STRIP_FRAMES = 8
LEAD_S = 4.0
CURVES = ("AU4", "AU6", "AU7", "AU9", "AU10", "AU43")


def pick_excerpt(seed: int, length_s: float, min_expressiveness: float = 8.0,
                 source_s: float = 120.0):
  """(record, start frame): the first subject of population `seed` at least
  this expressive, from LEAD_S before its first level-4 plateau."""
  length = int(round(length_s * aus.FPS))
  for subject_id in range(1000):
    rec = response.simulate_subject(seed, subject_id, "biovid", source_s)
    onsets = np.flatnonzero(np.diff((rec.level == 4).astype(int)) == 1) + 1
    lead = int(LEAD_S * aus.FPS)
    onsets = onsets[(onsets >= lead) & (onsets - lead + length
                                        <= rec.num_frames)]
    if rec.expressiveness >= min_expressiveness and onsets.size:
      return rec, int(onsets[0] - lead)
  raise RuntimeError(f"no subject of seed {seed} reaches expressiveness "
                     f"{min_expressiveness} with a level-4 plateau")


def strip_figure(rec, start: int, frames: np.ndarray, path: str) -> None:
  """Frame strip above the curves of rec[start:start + len(frames)]."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  n = len(frames)
  t = (start + np.arange(n)) / aus.FPS
  picks = np.linspace(0, n - 1, STRIP_FRAMES).round().astype(int)
  fig = plt.figure(figsize=(11, 5.8))
  grid = fig.add_gridspec(3, STRIP_FRAMES, height_ratios=[1.3, 0.9, 1.2],
                          hspace=0.25)
  for i, f in enumerate(picks):
    ax = fig.add_subplot(grid[0, i])
    ax.imshow(frames[f])
    ax.set_title(f"{t[f]:.1f} s\nPSPI {rec.pspi[start + f]:.1f}",
                 fontsize=8)
    ax.axis("off")
  window = slice(start, start + n)
  ax1 = fig.add_subplot(grid[1, :])
  ax1.plot(t, rec.stimulus_values[window], color="black", lw=1.2)
  subj = subject_lib.sample_subject(rec.seed, rec.subject_id)
  for value, name in ((subj.threshold_c, "threshold"),
                      (subj.tolerance_c, "tolerance")):
    ax1.axhline(value, color="grey", lw=0.8, ls="--")
    ax1.text(t[0] + 0.1, value + 0.3, name, fontsize=7, color="grey")
  ax1.set_ylabel(f"stimulus ({rec.stimulus_unit})")
  ax1.set_xlim(t[0], t[-1])
  ax1.tick_params(labelbottom=False)
  ax2 = fig.add_subplot(grid[2, :], sharex=ax1)
  ax2.plot(t, rec.pspi[window], color="crimson", lw=1.6, label="PSPI")
  for name in CURVES:
    ax2.plot(t, rec.au[window, aus.AU_INDEX[name]], lw=0.9, label=name)
  ax2.set_ylabel("intensity")
  ax2.set_xlabel("time (s)")
  ax2.legend(ncol=7, fontsize=7, loc="upper right")
  for ax in (ax1, ax2):
    for f in picks:
      ax.axvline(t[f], color="grey", lw=0.5, ls=":")
  fig.suptitle(
      f"simulated subject {rec.subject_id} (expressiveness "
      f"{rec.expressiveness:.1f}, {aus.EMOTIONS[rec.emotion]}): BioVid "
      f"protocol; frames (dotted lines) rendered from AU(t) on identity "
      f"{rec.subject_id}", fontsize=10)
  fig.savefig(path, dpi=90, bbox_inches="tight")
  plt.close(fig)


def gif(rec, start: int, frames: np.ndarray, path: str, every: int = 2
        ) -> None:
  """An animated GIF of the frames (every `every`-th), PSPI written on."""
  images = []
  for i in range(0, len(frames), every):
    im = Image.fromarray(frames[i])
    ImageDraw.Draw(im).text((3, 2), f"PSPI {rec.pspi[start + i]:4.1f}",
                            fill=(255, 255, 255))
    images.append(im.convert("P", palette=Image.Palette.ADAPTIVE,
                             colors=128))
  images[0].save(path, save_all=True, append_images=images[1:], loop=0,
                 duration=int(1000 * every / aus.FPS), optimize=True)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", default="docs")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--seconds", type=float, default=14.0)
  p.add_argument("--size", type=int, default=128)
  p.add_argument("--gif-size", type=int, default=96)
  p.add_argument("--gif-seconds", type=float, default=8.0)
  args = p.parse_args(argv)
  from synth.sequences import clips  # GL stack, only when rendering.

  rec, start = pick_excerpt(args.seed, args.seconds)
  au = rec.au[start:start + int(round(args.seconds * aus.FPS))]
  os.makedirs(args.out, exist_ok=True)
  config = clipset.clip_config(args.size, args.seed, texture_size=512)
  frames = clips.ClipRenderer(rec.subject_id, 0, config).render(au)
  strip_figure(rec, start, frames, os.path.join(args.out,
                                                "sequence_strip.png"))
  small = clipset.clip_config(args.gif_size, args.seed, texture_size=256)
  n = int(round(args.gif_seconds * aus.FPS))
  gif(rec, start, clips.ClipRenderer(rec.subject_id, 0, small).render(au[:n]),
      os.path.join(args.out, "sequence_clip.gif"))
  print(f"wrote {args.out}/sequence_strip.png and sequence_clip.gif "
        f"(subject {rec.subject_id}, frames {start}..{start + len(au)})")


if __name__ == "__main__":
  main()
