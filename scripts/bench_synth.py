"""Benchmark of the synthesis pipeline: images/s and time per stage.

  .venv/bin/python scripts/bench_synth.py --num-identities 24

Runs `synth.store.write_dataset` into a temporary folder with all cores and
prints:
- end-to-end images/s (33 images per identity; heatmaps come on top),
- steady-state images/s, counted after every worker finished its first
  identity (excludes process start, imports and head parsing),
- the process CPU time per image (user + system of all workers), which is
  what the rate on an otherwise idle machine is bounded by,
- seconds per stage summed over workers, per image and as a share.

The issue's goal is the full 3DPain (82,500 images at 256x256) within one
hour on a 2-core machine, i.e. at least 23 images/s.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time

from synth import cli_errors

PROG = "scripts/bench_synth.py"
GOAL_IMAGES = 82_500
GOAL_SECONDS = 3600.0


def _cpu_seconds() -> float:
  """User + system CPU of this process and its finished children."""
  own = resource.getrusage(resource.RUSAGE_SELF)
  kids = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
  """The benchmark; bad arguments: one line, exit status 2."""
  p = cli_errors.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
  p.add_argument("--num-identities", type=cli_errors.positive_int, default=24)
  p.add_argument("--resolution", type=cli_errors.positive_int, default=256)
  p.add_argument("--workers", type=cli_errors.positive_int, default=None)
  p.add_argument("--image-format", default="png", choices=("png", "jpeg"))
  p.add_argument("--png-compress-level", type=cli_errors.non_negative_int,
                 default=1)
  p.add_argument("--msaa-samples", type=cli_errors.non_negative_int,
                 default=0)
  p.add_argument("--out", help="keep the dataset here (default: temp dir)")
  args = p.parse_args(argv)
  return cli_errors.run(PROG, lambda: _bench(args), verbose=args.verbose)


def _bench(args) -> int:
  from synth import records, store
  from synth.config import SynthConfig

  if args.out:
    store.check_output_dir(args.out)

  config = SynthConfig(
    num_identities=args.num_identities,
    resolution=args.resolution,
    image_format=args.image_format,
    png_compress_level=args.png_compress_level,
    msaa_samples=args.msaa_samples,
  )
  workers = args.workers or store.default_workers(config)
  out = args.out or tempfile.mkdtemp(prefix="bench_synth_")
  per_id = (1 + records.NUM_PAIN_EXPRESSIONS) * config.num_views
  cpu0, start = _cpu_seconds(), time.perf_counter()
  summary = store.write_dataset(config, out, workers, progress=False)
  wall = time.perf_counter() - start
  done_at = [0.0] + summary.finished_at
  cpu = _cpu_seconds() - cpu0
  images = summary.images
  warm = min(workers, len(done_at) - 1)
  steady = (
    (len(done_at) - 1 - warm) * per_id / (done_at[-1] - done_at[warm])
    if len(done_at) - 1 > warm
    else float("nan")
  )
  _report(args, config, workers, summary, wall, cpu, images, steady)
  if not args.out:
    shutil.rmtree(out, ignore_errors=True)
  return 0


def _report(args, config, workers, summary, wall, cpu, images, steady):
  print(
    f"synth benchmark: {len(summary.written)} identities, {images} images "
    f"at {config.resolution}x{config.resolution} {config.image_format}, "
    f"{workers} workers, {os.cpu_count()} cores, load average "
    f"{os.getloadavg()[0]:.1f}"
  )
  print(f"  end-to-end     {images / wall:7.1f} images/s ({wall:.1f} s)")
  print(f"  steady state   {steady:7.1f} images/s (after warm-up)")
  print(
    f"  CPU per image  {1000 * cpu / images:7.1f} ms  -> bound "
    f"{workers * images / cpu:6.1f} images/s on {workers} idle cores"
  )
  need = GOAL_IMAGES / GOAL_SECONDS
  print(
    f"  goal           {need:7.1f} images/s (82,500 in 1 h); at steady "
    f"state the full dataset takes {GOAL_IMAGES / steady / 60:.0f} min"
  )
  wall_t = {k: v for k, v in summary.timings.items() if ":" not in k}
  cpu_t = {k[4:]: v for k, v in summary.timings.items() if k[:4] == "cpu:"}
  total = sum(cpu_t.values())
  print(
    f"  {'stage':14s} {'wall s':>8s} {'CPU s':>8s} {'CPU ms/img':>10s} "
    f"{'CPU share':>9s}"
  )
  for stage in wall_t:
    c = cpu_t.get(stage, 0.0)
    print(
      f"  {stage:14s} {wall_t[stage]:8.2f} {c:8.2f} "
      f"{1000 * c / images:10.2f} {100 * c / total:8.1f}%"
    )
  work = total - cpu_t.get("setup", 0.0)
  print(
    f"  per-image CPU without per-process setup: {1000 * work / images:.1f} "
    f"ms -> {workers * images / work:.1f} images/s on {workers} idle cores"
  )


if __name__ == "__main__":
  raise SystemExit(main())
