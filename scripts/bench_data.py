"""Benchmarks the `3dpain` dataset: generation, size on disk, random reads.

Builds a config with the `full` settings (256x256, default backends) but
fewer identities, then reports:
- generation throughput (examples/s, i.e. images/s) of `download_and_prepare`
  on all local cores, and the projected time for `full` (82,500 examples);
- bytes on disk per 1,000 examples (ArrayRecord, TFRecord twin, total);
- random-access throughput of `tfds.data_source` (ArrayRecord), raw records
  only and with the pain and neutral images (and heatmap) decoded, one
  process, single reads and batched `__getitems__` reads.

  .venv/bin/python scripts/bench_data.py --identities 10 --reads 2000

Numbers depend on the machine and its load; the script prints both.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time

import numpy as np
import tensorflow_datasets as tfds

import tfds_3dpain
from synth import cli_errors
from tfds_3dpain import configs, runner

PROG = "scripts/bench_data.py"

FULL = configs.BUILDER_CONFIGS[0]
SKIP_IMAGES = {
    name: tfds.decode.SkipDecoding()
    for name in ("image", "neutral_image", "heatmap")
}


def _cpu_seconds() -> float:
  """CPU time of this process and of its finished children (the pool)."""
  own = resource.getrusage(resource.RUSAGE_SELF)
  kids = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _build(identities: int, data_dir: str, workers: int | None):
  """Prepares a `full`-like config; (builder, wall seconds, CPU seconds)."""
  spec = dict(FULL.synth.to_dict(), num_identities=identities)
  cfg = tfds_3dpain.make_config(
      f"bench{identities}", num_workers=workers, **spec
  )
  builder = tfds.builder("3dpain", config=cfg, data_dir=data_dir)
  start, cpu = time.perf_counter(), _cpu_seconds()
  builder.download_and_prepare()
  return builder, time.perf_counter() - start, _cpu_seconds() - cpu


def _sizes(builder) -> dict[str, int]:
  """Bytes per file kind in the prepared folder."""
  out = {"array_record": 0, "tfrecord": 0, "total": 0}
  for path in builder.data_path.iterdir():
    size = path.stat().length
    out["total"] += size
    for kind in ("array_record", "tfrecord"):
      if f".{kind}-" in path.name:
        out[kind] += size
  return out


def _rate(read, indices, batch: int) -> tuple[float, float]:
  """Records per wall second and per CPU second of read() over indices."""
  start, cpu = time.perf_counter(), time.process_time()
  if batch == 1:
    for i in indices:
      read(i)
  else:
    for k in range(0, len(indices), batch):
      read(indices[k : k + batch])
  wall, cpu = time.perf_counter() - start, time.process_time() - cpu
  return len(indices) / wall, len(indices) / cpu


def _read_rates(builder, reads: int, seed: int = 0):
  decoded = builder.as_data_source(split="train")
  raw = builder.as_data_source(split="train", decoders=SKIP_IMAGES)
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(decoded), reads).tolist()
  decoded[idx[0]]  # Opens the files (first-touch cost not measured).
  return {
      "raw record, single": _rate(raw.__getitem__, idx, 1),
      "raw record, batch 32": _rate(raw.__getitems__, idx, 32),
      "decoded pain+neutral+heatmap, single": _rate(decoded.__getitem__, idx, 1),
      "decoded pain+neutral+heatmap, batch 32": _rate(
          decoded.__getitems__, idx, 32),
  }


def main(argv: list[str] | None = None) -> int:
  """The benchmark; bad arguments: one line, exit status 2."""
  parser = cli_errors.ArgumentParser(prog=PROG,
                                     description=__doc__.split("\n")[0])
  parser.add_argument("--identities", type=cli_errors.positive_int,
                      default=10)
  parser.add_argument("--reads", type=cli_errors.positive_int, default=2000)
  parser.add_argument("--workers", type=cli_errors.positive_int, default=None)
  parser.add_argument("--data_dir", default=None)
  args = parser.parse_args(argv)
  return cli_errors.run(PROG, lambda: _bench(args), verbose=args.verbose)


def _bench(args) -> int:
  if args.data_dir:
    cli_errors.check_output_dir(args.data_dir, "--data_dir")
  data_dir = args.data_dir or tempfile.mkdtemp(prefix="bench_3dpain_")

  print(f"machine: {runner.local_cores()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; data_dir {data_dir}")
  builder, seconds, cpu = _build(args.identities, data_dir, args.workers)
  n = builder.info.splits.total_num_examples
  rate, cores = n / seconds, runner.local_cores()
  full_n = FULL.synth.num_identities * 33
  print(f"generation: {args.identities} identities, {n} examples at "
        f"{FULL.synth.resolution}x{FULL.synth.resolution} in {seconds:.1f} s "
        f"= {rate:.1f} examples/s (images/s); `full` ({full_n} examples) "
        f"would take about {full_n / rate / 3600:.2f} h")
  print(f"generation CPU: {cpu / n * 1000:.0f} ms per example (all "
        f"processes), i.e. {cores * n / cpu:.1f} examples/s on {cores} idle "
        f"cores")
  sizes = _sizes(builder)
  print("on disk per 1,000 examples: " + ", ".join(
      f"{k} {v / n * 1000 / 2**20:.1f} MiB" for k, v in sizes.items()))
  for name, (wall, cpu) in _read_rates(builder, args.reads).items():
    print(f"random reads ({name}): {wall:,.0f} records/s "
          f"({cpu:,.0f} per CPU second)")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
