"""Host-side input pipeline throughput: what the training loop is fed.

  .venv/bin/python scripts/bench_input.py
  .venv/bin/python scripts/bench_input.py --data 3dpain/small --data-dir DIR

Runs `jaxpain.data.pipeline.train_dataset` exactly as the trainer does (grain
shuffle/repeat/batch over `tfds.data_source`, JPEG decode of the pain image
and its neutral reference, uint8 batches; augmentation is NOT here: it runs
on the device inside the jitted step) and reports, per setting:

- pairs/s (pain + neutral) from wall time, after the first batches;
- pairs per CPU second of this process and its grain workers: the per-core
  rate, which is what issue 7's goal (1,500 pairs/s per host core) is about.

Settings: neutral same-view / random-view, in the main process (workers=0)
and with `--workers` grain processes. The default data is the fake release
that `scripts/bench_train.py` uses (`3dpain/official`, 256x256 q90 JPEGs of
random pixels: larger and slower to decode than real faces).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GOAL_PER_CORE = 1500.0


def _proc_tree_cpu() -> float:
  """CPU seconds of this process and its live children (grain workers)."""
  total = 0.0
  tick = os.sysconf("SC_CLK_TCK")
  pids = [os.getpid()]
  for task in os.listdir(f"/proc/{os.getpid()}/task"):  # any thread's kids
    try:
      with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
        pids += [int(p) for p in f.read().split()]
    except OSError:
      continue
  for pid in pids:
    try:
      with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
      total += (int(fields[11]) + int(fields[12])) / tick
    except OSError:
      continue
  return total


def measure(src, index, mode: str, workers: int, batch: int, batches: int,
            warmup: int) -> dict:
  import jax

  from jaxpain import sharding as shd
  from jaxpain.data import pipeline
  mesh = shd.create_mesh((1, 1, 1), ("data", "fsdp", "tensor"),
                         devices=jax.devices()[:1])
  sharding = shd.batch_sharding(mesh, ("data", "fsdp"))
  spec = pipeline.InputSpec(fields=("image", "neutral"), neutral_mode=mode)
  ds = pipeline.train_dataset(src, index, spec, batch, sharding, workers,
                              buffer=2)
  it = iter(ds)
  for _ in range(warmup):
    next(it)
  cpu0, t0 = _proc_tree_cpu(), time.perf_counter()
  for _ in range(batches):
    b = next(it)
  wall = time.perf_counter() - t0
  cpu = _proc_tree_cpu() - cpu0
  shape = tuple(b["image"].shape[1:])
  del it
  pairs = batches * batch
  return {"neutral_mode": mode, "workers": workers, "batch": batch,
          "image_shape": shape, "pairs": pairs, "wall_s": round(wall, 2),
          "pairs_per_s": round(pairs / wall, 1),
          "cpu_s": round(cpu, 2),
          "pairs_per_cpu_s": round(pairs / cpu, 1) if cpu > 0 else None}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--data", default=None,
                 help="TFDS name of a prepared dataset (default: the fake "
                 "release fixture)")
  p.add_argument("--data-dir", default=None)
  p.add_argument("--image-size", type=int, default=256,
                 help="fixture image size")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--batches", type=int, default=200)
  p.add_argument("--warmup", type=int, default=20)
  p.add_argument("--workers", type=int, default=2,
                 help="grain workers of the multi-process setting")
  p.add_argument("--out", help="JSON report path")
  a = p.parse_args(argv)
  if a.data and not a.data_dir:
    p.error("--data needs --data-dir (nothing is downloaded)")
  for name in ("batch", "batches", "workers", "warmup", "image_size"):
    if getattr(a, name) < (1 if name in ("batch", "batches") else 0):
      p.error(f"--{name.replace('_', '-')} is {getattr(a, name)}: too small")

  import absl.flags
  if not absl.flags.FLAGS.is_parsed():
    absl.flags.FLAGS.mark_as_parsed()  # grain's workers read absl flags
  from jaxpain.data import sources
  if a.data:
    name, data_dir = a.data, a.data_dir
  else:
    import bench_train
    data_dir = bench_train.prepare_fixture(
      a.data_dir or os.path.join(tempfile.gettempdir(), "jaxpain_bench"),
      a.image_size, 8)
    name = "3dpain/official"
  try:
    src = sources.open_source(name, "train", data_dir)
    index = sources.split_index(src, name, "train", data_dir)
  except sources.DataError as e:
    raise SystemExit(f"bench_input: {e}") from None

  rows = []
  for workers in (0, a.workers):
    for mode in ("same_view", "random_view"):
      r = measure(src, index, mode, workers, a.batch, a.batches, a.warmup)
      rows.append(r)
      print(f"  {mode:11s} workers={workers}: {r['pairs_per_s']:8.1f} "
            f"pairs/s, {r['pairs_per_cpu_s']} pairs per CPU-s", flush=True)

  print(f"\n{name}, images {rows[0]['image_shape']}, batch {a.batch}, "
        f"{a.batches} batches after {a.warmup} warm-up; "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}\n")
  print("| neutral | grain workers | pairs/s (wall) | pairs per CPU-s "
        "(per core) | goal 1,500/core |")
  print("|---|---|---|---|---|")
  for r in rows:
    ok = "met" if (r["pairs_per_cpu_s"] or 0) >= GOAL_PER_CORE else "not met"
    print(f"| {r['neutral_mode']} | {r['workers']} | {r['pairs_per_s']} | "
          f"{r['pairs_per_cpu_s']} | {ok} |")
  if a.out:
    with open(a.out, "w") as f:
      json.dump({"data": name, "rows": rows, "cores": os.cpu_count(),
                 "load_avg": os.getloadavg()}, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
