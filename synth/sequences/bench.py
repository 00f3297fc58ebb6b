"""Speed of the sequence simulator and of clip rendering (CPU seconds).

  python scripts/bench_sequences.py [--subjects 32] [--minutes 10]

Simulation: `--subjects` subjects under `--minutes` of the BioVid
programme, cut into training windows (64 and 32 frames, stride 10, as
PainDiffusion places them); windows/s per core from the process CPU time
(one process: numpy and scipy stay single-threaded here). Rendering: one
ClipRenderer per size, ms of CPU per frame over `--frames` frames after a
warm-up, and the one-off identity set-up (texture painting, upload). CPU
time, not wall time, because the machine is shared (TEAM.md).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from synth.sequences import clipset, response, windowing


def _cpu() -> float:
  return time.process_time()


def bench_simulation(subjects: int, minutes: float, seed: int = 0) -> dict:
  """CPU seconds and rates of simulate + windows for `subjects` records."""
  start = _cpu()
  records = list(response.simulate_subjects(seed, range(subjects),
                                            "biovid", 60.0 * minutes))
  sim = _cpu() - start
  frames = sum(r.num_frames for r in records)
  out = {"subjects": subjects, "minutes": minutes, "frames": frames,
         "simulate_cpu_s": sim, "frames_per_cpu_s": frames / sim}
  for length in (64, 32):
    start = _cpu()
    count = sum(len(windowing.windows(r, length, 10)["start"])
                for r in records)
    cut = _cpu() - start
    out[f"windows{length}"] = count
    out[f"windows{length}_per_cpu_s"] = count / (sim + cut)
  return out


def bench_render(size: int, frames: int, seed: int = 0) -> dict:
  """CPU ms per rendered frame at `size` px, and the set-up seconds."""
  from synth.sequences import clips  # GL stack.

  rec = response.simulate_subject(seed, 1, "biovid",
                                  (frames + 10) / 25.0 + 1)
  config = clipset.clip_config(size, seed)
  clips.ClipRenderer(0, 0, config)  # Process set-up: head, atlas, GL.
  start = _cpu()
  renderer = clips.ClipRenderer(1, 0, config)
  setup = _cpu() - start
  renderer.render(rec.au[:10])
  wall, start = time.perf_counter(), _cpu()
  renderer.render(rec.au[10:10 + frames])
  cpu, wall = _cpu() - start, time.perf_counter() - wall
  return {"size": size, "frames": frames, "identity_setup_cpu_s": setup,
          "cpu_ms_per_frame": 1000 * cpu / frames,
          "wall_ms_per_frame": 1000 * wall / frames}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--subjects", type=int, default=32)
  p.add_argument("--minutes", type=float, default=10.0)
  p.add_argument("--sizes", type=int, nargs="*", default=[32, 64, 128])
  p.add_argument("--frames", type=int, default=250)
  p.add_argument("--out", help="also write the results as JSON here")
  args = p.parse_args(argv)
  result = {"load_avg": os.getloadavg(),
            "simulation": bench_simulation(args.subjects, args.minutes),
            "render": [bench_render(s, args.frames) for s in args.sizes]}
  print(json.dumps(result, indent=1))
  if args.out:
    with open(args.out, "w") as f:
      json.dump(result, f, indent=1)
