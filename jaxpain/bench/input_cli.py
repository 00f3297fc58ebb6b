"""The `scripts/bench_input.py` command: every layout, then the tables.

Runs `jaxpain.bench.input`'s measurements for each (stored size, layout)
cell, prints the markdown tables that docs/benchmarks.md §3 carries (the
main table, the per-stage profile, the decode choices) and writes the JSON
report. Figures a run could not give are None.
"""

from __future__ import annotations

import argparse
import json
import os

from jaxpain.bench.input import (
  GOAL_PER_CORE,
  LAYOUTS,
  MODES,
  RENDER,
  bench_config,
  decode_choices,
  disk_mib,
  measure,
  prepare,
  stage_profile,
  tfdata_rate,
)

# ---------------------------------------------------------------- run ----


def run_layout(a, size: int, layout: str) -> dict:
  """Every measurement of one (stored size, layout) cell."""
  import tensorflow_datasets as tfds

  from jaxpain.data import sources

  try:
    name = prepare(a.data_dir, a.source, size, layout, a.identities,
                   a.render)
  except OSError as e:
    raise sources.DataError(
        f"cannot build the benchmark data in {a.data_dir}: {e}; pass a "
        "writable --data-dir") from None
  src = sources.open_source(name, "train", a.data_dir)
  index = sources.split_index(src, name, "train", a.data_dir)
  cell = {"data": name, "stored": size, "layout": layout,
          "disk_mib": disk_mib(src), "rows": []}
  for workers in sorted({0, a.workers}):
    for mode, cache in MODES:
      r = measure(src, index, mode, cache, workers, a.batch, a.batches,
                  a.warmup, a.image_size)
      cell["rows"].append({"reader": "records", **r})
      print(f"  {name} {mode} cache={cache} workers={workers}: "
            f"{r['pairs_per_cpu_s']} pairs per CPU-s", flush=True)
  if layout == "jpeg":  # the reader it replaces, on the same records
    before = tfds.data_source(name, split="train", data_dir=a.data_dir)
    for mode, _ in MODES[:2]:
      r = measure(before, index, mode, 0, 0, a.batch, a.before_batches,
                  1, a.image_size)
      cell["rows"].append({"reader": "tfds.data_source", **r})
  cell["stages"] = stage_profile(src, index, a.image_size)
  if a.tfdata:
    cfg = bench_config(a.source, size, layout, a.identities, a.render)
    cell["tfdata"] = tfdata_rate(cfg, a.data_dir, a.batch, a.batches,
                                 a.warmup)
  if layout == "jpeg" and size == a.render == RENDER:
    cell["decode_choices"] = decode_choices(src, index)
  return cell


def table(report: dict) -> str:
  """The markdown tables of a report (main table, stages, decode)."""
  w = report["workers"]
  lines = [f"| stored | layout | train MiB | reader | neutral | pairs/CPU-s "
           f"(in-process) | pairs/CPU-s ({w} workers) | pairs/s ({w} "
           f"workers) | tf.data pairs/CPU-s | goal {GOAL_PER_CORE:,.0f} |",
           "|" + "---|" * 10]
  for c in report["cells"]:
    by = {}
    for r in c["rows"]:
      off = r["reader"] == "records" and not r["neutral_cache_mb"]
      mode = r["neutral_mode"] + (", no cache" if off else "")
      by.setdefault((r["reader"], mode), {})[r["workers"]] = r
    for (reader, mode), ws in by.items():
      own, multi = ws.get(0, {}), ws.get(w, {}) if w else {}
      tfd = c.get("tfdata", {}).get("pairs_per_cpu_s") if (
          mode == "same_view" and reader == "records") else None
      best = max([x for x in (own.get("pairs_per_cpu_s"),
                              multi.get("pairs_per_cpu_s")) if x] or [0])
      lines.append(
          f"| {c['stored']} | {c['layout']} | {c['disk_mib']} | {reader} | "
          f"{mode} | {own.get('pairs_per_cpu_s')} | "
          f"{multi.get('pairs_per_cpu_s', '-')} | "
          f"{multi.get('pairs_per_s', '-')} | {tfd if tfd else '-'} | "
          f"{'met' if best >= GOAL_PER_CORE else 'not met'} |")
  lines += ["", "| stored | layout | read | parse | decode | resize (host) | "
            "neutral (cached) | batch + grain | total (same-view, "
            "in-process) |", "|" + "---|" * 9]
  for c in report["cells"]:
    s = c["stages"]
    own = next(r for r in c["rows"] if r["reader"] == "records"
               and r["workers"] == 0 and r["neutral_mode"] == "same_view")
    total = (round(1e6 / own["pairs_per_cpu_s"], 1)
             if own["pairs_per_cpu_s"] else None)
    parts = [s[k] for k in ("read", "parse", "decode", "neutral")]
    rest = (round(total - sum(parts), 1) if total is not None
            and None not in parts else None)
    lines.append(f"| {c['stored']} | {c['layout']} | {s['read']} | "
                 f"{s['parse']} | {s['decode']} | {s['resize']} | "
                 f"{s['neutral']} | {rest} | {total} |")
  for c in report["cells"]:
    if "decode_choices" in c:
      lines += ["", "| model side | Pillow decode + resize | simplejpeg full"
                " | DCT 1/2^k (scale) | DCT nearest k/8 |", "|" + "---|" * 5]
      for d in c["decode_choices"]:
        lines.append(
            f"| {d['target']} | {d['pillow_decode_resize']} | "
            f"{d['simplejpeg_full']} | {d['dct_power_of_two']} "
            f"({d['dct_scale']}) | {d['dct_nearest_eighth']} |")
  return "\n".join(lines)


def _ints(text: str) -> list[int]:
  return [int(x) for x in text.split(",") if x]


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description="Host input pipeline throughput per storage layout and stage.")
  p.add_argument("--data-dir", required=True,
                 help="TFDS data_dir for the benchmark's datasets (cached)")
  p.add_argument("--source", choices=("synth", "fixture"), default="synth")
  p.add_argument("--identities", type=int, default=8)
  p.add_argument("--render", type=int, default=RENDER,
                 help="rendered / fixture image side")
  p.add_argument("--sizes", default="64,128,224,256",
                 help="stored sides, comma-separated")
  p.add_argument("--layouts", default=",".join(LAYOUTS))
  p.add_argument("--image-size", type=int, default=224,
                 help="the model's side (DCT scaling where it applies)")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--batches", type=int, default=60)
  p.add_argument("--before-batches", type=int, default=8,
                 help="batches of the slow tfds.data_source baseline")
  p.add_argument("--warmup", type=int, default=5)
  p.add_argument("--workers", type=int, default=2)
  p.add_argument("--no-tfdata", dest="tfdata", action="store_false")
  p.add_argument("--out", help="JSON report path")
  a = p.parse_args(argv)
  a.sizes = _ints(a.sizes)
  a.layouts = [x for x in a.layouts.split(",") if x]
  bad = [x for x in a.layouts if x not in LAYOUTS]
  if bad:
    p.error(f"--layouts {bad}: choose from {LAYOUTS}")
  for name in ("batch", "batches", "before_batches", "identities"):
    if getattr(a, name) < 1:
      p.error(f"--{name.replace('_', '-')} must be >= 1")
  if a.workers < 0 or a.warmup < 0 or not a.sizes or min(a.sizes) < 8:
    p.error("--workers and --warmup must be >= 0, --sizes >= 8")
  return a


def main(argv=None) -> int:
  a = parse_args(argv)
  import absl.flags
  if not absl.flags.FLAGS.is_parsed():
    absl.flags.FLAGS.mark_as_parsed()  # grain's workers read absl flags
  from jaxpain.data import sources

  cells = []
  try:
    for size in a.sizes:
      for layout in a.layouts:
        cells.append(run_layout(a, size, layout))
  except sources.DataError as e:
    raise SystemExit(f"bench_input: {e}") from None
  report = {"source": a.source, "identities": a.identities,
            "render": a.render, "image_size": a.image_size,
            "batch": a.batch, "batches": a.batches, "workers": a.workers,
            "cores": os.cpu_count(), "load_avg": os.getloadavg(),
            "cells": cells}
  print(f"\n{a.source} faces rendered at {a.render}, model side "
        f"{a.image_size}, batch {a.batch}, {a.batches} batches; "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}\n")
  print(table(report))
  if a.out:
    with open(a.out, "w") as f:
      json.dump(report, f, indent=1)
  return 0
