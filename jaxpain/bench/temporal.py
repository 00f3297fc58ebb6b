"""Speed and long-rollout stability of the temporal sampler.

  python scripts/bench_temporal.py --out runs/bench_temporal
      [--variant base|released]  [--workdir RUN]  [--chunks 20]
      [--batches 1,4,16,64]  [--minutes 10]

Three measurements, each with wall AND process CPU time (all threads; on a
shared machine CPU time counts the work, wall time also the waiting):

1. Real-time factor of ONE stream, guidance included (4 branches per
   evaluation): steady-state chunks of the model's window (median and
   p10-p90 over `--chunks` chunks after a warm-up), as seconds of AU
   produced per second of compute; also per 24 frames (issue 18's goal:
   24 frames in <= 0.24 s, i.e. >= 4x real time).
2. Many streams batched in one call per chunk: the real-time factor per
   stream for each batch size, and how many concurrent real-time streams
   the machine holds (batch x per-stream factor, where that factor is
   >= 1).
3. (--workdir) a `--minutes`-long rollout of a trained model on a held-out
   BioVid subject, its per-minute AU mean and variance against the
   simulator's bounds (synth.sequences.minute_bounds) and a PNG of PSPI(t).

Without --workdir the model has random weights (speed does not depend on
them) and the sampler settings of configs/temporal.py; `--variant
released` is the authors' FLAME-space network at full size (the
real-time model: 8-token window, C = 2, fs 4) with its own sampler
settings (`released.stream.sampler_config`: 35 levels, u = 4, guidance),
streamed by our sampler (`jaxpain.bench.chunk`).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import time

import jax
import numpy as np

from jaxpain.bench import chunk as chunk_lib
from jaxpain.bench import context, stats
from jaxpain.temporal import sampler
from synth import sequences as sq


def _model(workdir: str | None, variant: str):
  if workdir:
    from jaxpain.temporal import train

    net, scfg, _ = train.load_model(workdir)
    return net, scfg
  return chunk_lib.build(variant)


def time_chunks(net, scfg, batch: int, chunks: int, warmup: int = 2,
                variant: str | None = None) -> dict:
  """Steady-state chunks of `batch` streams; summary of their times.

  `net` is ours or the released network (`jaxpain.bench.chunk`); each
  chunk carries the previous one's context; the clock stops when its
  output is ready."""
  ch = chunk_lib.of(net, scfg, variant)
  args = chunk_lib.inputs(ch, batch)
  key = jax.random.key(0, impl=sampler.KEY_IMPL)
  calls = itertools.count()

  def step():
    nonlocal args
    out = jax.block_until_ready(
        ch(args, jax.random.fold_in(key, next(calls))))
    args = ch.advance(out, args)

  print(f"{ch.variant}: {batch} streams, {warmup} + {chunks} chunks",
        file=sys.stderr, flush=True)
  for _ in range(warmup):
    step()
  steps = stats.timed(step, chunks)
  seconds_of_au = ch.new_frames / sq.FPS
  wall = stats.median([w for w, _ in steps])
  cpu = stats.median([c for _, c in steps])
  return {
      "batch": batch, "frames_per_chunk": ch.new_frames,
      "evaluations_per_chunk": ch.evaluations,
      "chunk_ms_median": 1e3 * wall,
      "chunk_ms_p10": 1e3 * stats.quantile([w for w, _ in steps], 0.1),
      "chunk_ms_p90": 1e3 * stats.quantile([w for w, _ in steps], 0.9),
      "chunk_cpu_ms_median": 1e3 * cpu,
      "rtf_per_stream_wall": stats.rate(seconds_of_au, wall),
      "rtf_per_stream_cpu": stats.rate(seconds_of_au, cpu),
      "ms_per_24_frames_wall": 1e3 * wall * 24 / ch.new_frames,
      "ms_per_24_frames_cpu": 1e3 * cpu * 24 / ch.new_frames,
  }


def capacity(rows: list[dict], key: str) -> float | None:
  """Most concurrent real-time streams over the measured batch sizes."""
  best = [r["batch"] * r[key] for r in rows
          if r[key] is not None and r[key] >= 1.0]
  return max(best) if best else None


def long_rollout(net, scfg, minutes: float, out_dir: str, seed: int = 7
                 ) -> dict:
  """A held-out BioVid subject for `minutes`; drift checks and a PNG."""
  subject = sq.sample_subject(seed, 999)
  stim = sq.stimulus("biovid", 60.0 * minutes, seed, subject).drive
  t0, c0 = time.perf_counter(), time.process_time()
  au = sampler.rollout(net, scfg, stim[None], [subject.expressiveness],
                       [subject.emotion], seed=seed, progress=True)[0]
  wall, cpu = time.perf_counter() - t0, time.process_time() - c0
  bounds = sq.minute_bounds(seed=0, subject_ids=range(1000, 1032),
                            minutes=int(np.ceil(minutes)))
  mean, var = sq.minute_stats(au)
  problems = bounds.violations(au)
  png = _plot_rollout(au, stim, os.path.join(out_dir, "rollout.png"))
  return {"minutes": minutes, "wall_s": wall, "cpu_s": cpu,
          "violations": problems, "within_bounds": not problems,
          "per_minute_total_var": var.sum(1).round(4).tolist(),
          "per_minute_pspi_mean": sq.pspi(mean).round(3).tolist(),
          "total_var_floor": bounds.total_var_lo, "png": png}


def _plot_rollout(au, stim, path: str) -> str:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  t = np.arange(len(au)) / sq.FPS / 60
  fig, ax = plt.subplots(2, 1, figsize=(11, 4.5), sharex=True)
  ax[0].plot(t, stim, color="tab:red", lw=0.6)
  ax[0].set_ylabel("stimulus")
  ax[1].plot(t, sq.pspi(au), lw=0.5)
  ax[1].set_ylabel("PSPI")
  ax[1].set_xlabel("minutes")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def run(out_dir: str, workdir: str | None = None, variant: str = "base",
        chunks: int = 20, batches=(1, 4, 16, 64), minutes: float = 0.0,
        levels: tuple[int, ...] = (), warmup: int = 2) -> dict:
  """All measurements; writes `out_dir/bench_temporal.json`.

  `variant`: ours (`model.VARIANTS`) or the released network
  (`chunk.RELEASED`), random weights; ignored with `workdir`."""
  net, scfg = _model(workdir, variant)
  name = None if workdir else variant
  os.makedirs(out_dir, exist_ok=True)
  ch = chunk_lib.of(net, scfg, name)
  res = {"model": {"variant": ch.variant, "parameters": ch.parameters,
                   "window": ch.window, "context": ch.context,
                   "num_levels": scfg.num_levels,
                   "uncertainty": scfg.uncertainty,
                   "guidance": scfg.guidance, "trained": bool(workdir)},
         "context": {"cpu": context.cpu_info(), "versions":
                     context.versions(), "load": context.load()}}
  timer = lambda s, b, n: time_chunks(net, s, b, n, warmup, name)
  res["single_stream"] = timer(scfg, 1, chunks)
  res["levels"] = [timer(dataclasses.replace(scfg, num_levels=n), 1, chunks)
                   | {"num_levels": n} for n in levels]
  rows = [timer(scfg, b, max(3, chunks // max(1, b // 4))) for b in batches]
  res["batched"] = rows
  res["realtime_streams_cpu"] = capacity(rows, "rtf_per_stream_cpu")
  res["realtime_streams_wall"] = capacity(rows, "rtf_per_stream_wall")
  if workdir and minutes > 0:
    res["rollout"] = long_rollout(net, scfg, minutes, out_dir)
  res["load_after"] = context.load()
  with open(os.path.join(out_dir, "bench_temporal.json"), "w") as f:
    json.dump(res, f, indent=2, default=str)
  return res


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", default="runs/bench_temporal")
  p.add_argument("--workdir", default=None, help="a trained run")
  p.add_argument("--variant", default="base",
                 help=f"one of {', '.join(chunk_lib.variants())}")
  p.add_argument("--chunks", type=int, default=20)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--batches", default="1,4,16,64")
  p.add_argument("--minutes", type=float, default=0.0)
  p.add_argument("--levels", default="", help="extra L values, e.g. 8,32")
  a = p.parse_args(argv)
  if not a.workdir and a.variant not in chunk_lib.variants():
    p.exit(2, f"error: unknown variant {a.variant!r}: one of "
           f"{', '.join(chunk_lib.variants())}\n")
  res = run(a.out, a.workdir, a.variant, a.chunks,
            tuple(int(b) for b in a.batches.split(",")), a.minutes,
            tuple(int(x) for x in a.levels.split(",") if x), a.warmup)
  print(json.dumps({k: res[k] for k in ("single_stream",
                                        "realtime_streams_cpu",
                                        "realtime_streams_wall")},
                   indent=1))
  return res
