"""Text for people: one case's per-chip report, and the sweep's table."""

from __future__ import annotations

import glob
import json
import os
from typing import Any

from jaxpain.aot import analysis, chips, runner

_COST_MODEL_NOTE = (
    "XLA's cost-model time (optimal_seconds) is negative for this program, "
    "so it is not a time; the roofline stands in for it.")


def case_text(r: dict[str, Any]) -> str:
  """Per-chip report of one compiled case."""
  if not r.get("memory"):
    return f"{r['id']}: does not fit: {r.get('error', {}).get('message')}"
  chip = chips.CHIPS[r["chip"]]
  mem, roof = r["memory"], r["roofline"]
  g = analysis.gib
  slices = f", {r['slices']} slices" if r["slices"] > 1 else ""
  lines = [
      f"{r['id']}  ({r['kind']} step, {r['variant']}, sharding "
      f"{r['sharding']}, mesh {r['mesh']}, {r['chips']} x {chip.name}"
      f"{slices})",
      f"  compile {r['compile_s']:.0f} s (lower {r['lower_s']:.0f} s)",
      f"  HBM per chip: arguments {g(mem['argument']):.2f} GiB, outputs "
      f"{g(mem['output']):.2f}, temporaries {g(mem['temp']):.2f}, code "
      f"{g(mem['generated_code']):.3f}, aliased {g(mem['alias']):.2f} -> "
      f"peak {g(mem['peak']):.2f} of {g(mem['hbm']):.0f} GiB "
      f"({100 * mem['fraction']:.0f}%){'' if r['fits'] else '  DOES NOT FIT'}",
      f"  per chip per step: {r['flops'] / 1e12:.3f} TFLOP, "
      f"{r['bytes'] / 1e9:.2f} GB of HBM traffic (XLA's cost analysis: "
      f"{r['cost_xla']['flops'] / 1e12:.3f} TFLOP and "
      f"{r['cost_xla']['bytes'] / 1e9:.2f} GB accessed, loop bodies once "
      f"and on-chip memory included; +"
      f"{r['loop_extra']['flops'] / 1e12:.3f} TFLOP for the other "
      "iterations)",
      f"  roofline: {analysis.fmt_seconds(roof['t_flops'])} at "
      f"{chip.peak_bf16 / 1e12:.0f} TFLOP/s, "
      f"{analysis.fmt_seconds(roof['t_bytes'])} at "
      f"{chip.hbm_bw / 1e9:.0f} GB/s -> {roof['bound']}-bound "
      f"{analysis.fmt_seconds(roof['t_roofline'])}",
      f"  collectives: {analysis.fmt_seconds(roof['t_collectives'])} per "
      f"step ({100 * roof['collective_share']:.1f}% of "
      f"{analysis.fmt_seconds(roof['t_step'])})",
  ]
  for c in r["collectives"][:8]:
    lines.append(
        f"    {c['kind']}{'-start' if c['async'] else ''} group {c['group']}"
        f"{' DCN' if c['dcn'] else ''}: {c['ops']} ops x runs -> "
        f"{c['runs']:.0f} per step, {c['tensors']:.0f} tensors, "
        f"{c['bytes'] / 1e6:.2f} MB, {analysis.fmt_seconds(c['seconds'])}"
        f"  e.g. {c['examples'][0] if c['examples'] else ''}")
  per_chip = roof["examples_per_s_per_chip"]
  lines.append(
      f"  estimate: {per_chip:.1f} examples/s per chip, "
      f"{per_chip * r['chips']:.0f} for the slice; MFU "
      f"{100 * roof['mfu']:.1f}% ({100 * roof['mfu_no_collectives']:.1f}% "
      "without collectives)")
  if roof["cost_model_s"] is None:
    lines.append("  cost model: " + _COST_MODEL_NOTE)
  elif r["loop_extra"]["flops"] > 0:
    lines.append(f"  cost model: {analysis.fmt_seconds(roof['cost_model_s'])}"
                 " for the program with each loop body once (the scanned "
                 "blocks: 1 of their iterations), without collectives: not "
                 "a step time")
  else:
    lines.append(f"  cost model: {analysis.fmt_seconds(roof['cost_model_s'])}"
                 f" -> MFU {100 * roof.get('mfu_cost_model', 0):.1f}% "
                 "(collectives not included)")
  if r.get("augment"):
    a = r["augment"]
    hbm = (f"{a['hbm_bytes'] / 1e9:.3f} GB of HBM traffic, "
           f"{100 * a['share_of_hbm']:.1f}% of the step's; "
           if "hbm_bytes" in a else "")
    lines.append(f"  augmentation alone: {hbm}XLA: {a['bytes'] / 1e9:.3f} GB "
                 f"accessed, {a['flops'] / 1e9:.1f} GFLOP")
  return "\n".join(lines)


def load_results(out_dir: str) -> tuple[list[dict], dict[str, dict]]:
  searches = []
  for p in sorted(glob.glob(os.path.join(out_dir, "search", "*.json"))):
    with open(p) as f:
      searches.append(json.load(f))
  cases = {}
  for p in glob.glob(os.path.join(out_dir, "cases", "*.json")):
    with open(p) as f:
      r = runner.derive(json.load(f))
    cases[r["id"]] = r
  return searches, cases


def rows(out_dir: str) -> list[dict[str, Any]]:
  """One flat row per finished sweep cell (its reported result)."""
  searches, cases = load_results(out_dir)
  out = []
  for s in searches:
    r = cases.get(s.get("result") or "")
    row = {"config": s["config"], "topology": s["topology"],
           "largest": s["batch"], "verified": s.get("verified", False)}
    if r is None or not r.get("memory"):
      out.append(dict(row, variant=s["config"], sharding="?", fits=False,
                      mfu=0.0))
      continue
    mem, roof = r["memory"], r["roofline"]
    probe = _probe(s, cases)
    if probe is not None and probe["id"] != r["id"]:
      row.update(probe_batch=probe["case"]["batch"],
                 probe_mfu=probe["roofline"]["mfu"],
                 probe_share=probe["roofline"]["collective_share"])
    out.append(dict(
        row, variant=r["variant"], sharding=r["sharding"], fits=True,
        mesh="x".join(str(v) for v in r["mesh"].values()),
        batch=r["case"]["batch"], chips=r["chips"], peak=mem["peak"],
        fraction=mem["fraction"], t_roofline=roof["t_roofline"],
        bound=roof["bound"], t_collectives=roof["t_collectives"],
        share=roof["collective_share"], t_step=roof["t_step"],
        mfu=roof["mfu"], per_chip=roof["examples_per_s_per_chip"],
        pairs_s=roof["examples_per_s_per_chip"] * r["chips"]))
  order = {v: i for i, v in enumerate(("S/16", "B/16", "L/16", "g/14"))}
  topo = {t: i for i, t in enumerate(chips.TOPOLOGIES)}
  out.sort(key=lambda x: (order.get(x["variant"], 9),
                          topo.get(x["topology"], 99), x["sharding"]))
  return out


def _probe(search: dict, cases: dict) -> dict | None:
  """The first compile of a largest-batch search that fit (its probe)."""
  prefix = search["result"].rsplit("__b", 1)[0] if search.get(
      "result") else None
  for per_shard in search.get("tries", []):
    r = cases.get(f"{prefix}__b{per_shard * search['shards']}")
    if r is not None and r.get("fits"):
      return r
  return None


def sweep_table(out_dir: str) -> str:
  """Markdown: variant x topology x sharding (see docs/benchmarks.md §4)."""
  lines = ["| variant | sharding | topology | mesh (data x fsdp x tensor) | "
           "largest global batch | HBM per chip | roofline step (bound) | "
           "collectives per step | MFU | pairs/s | at 8 per batch shard: "
           "MFU, collectives |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for x in rows(out_dir):
    if not x["fits"]:
      lines.append(f"| {x['variant']} | | {x['topology']} | | none fits | "
                   "| | | | | |")
      continue
    largest = f"{x['largest']:,}" + ("" if x["verified"] else
                                     f" (predicted; figures at {x['batch']:,})")
    probe = (f"{100 * x['probe_mfu']:.0f}%, {100 * x['probe_share']:.1f}%"
             if "probe_mfu" in x else "(same)")
    lines.append(
        f"| {x['variant']} | {x['sharding']} | {x['topology']} | "
        f"{x['mesh']} | {largest} | "
        f"{analysis.gib(x['peak']):.1f} GiB ({100 * x['fraction']:.0f}%) | "
        f"{analysis.fmt_seconds(x['t_roofline'])} ({x['bound'][:3]}) | "
        f"{analysis.fmt_seconds(x['t_collectives'])} "
        f"({100 * x['share']:.1f}%) | {100 * x['mfu']:.0f}% | "
        f"{x['pairs_s']:,.0f} | {probe} |")
  return "\n".join(lines)


def _cost_model_cell(r: dict[str, Any]) -> str:
  roof = r["roofline"]
  if roof["cost_model_s"] is None:
    return "negative"
  text = analysis.fmt_seconds(roof["cost_model_s"])
  return text + " (loop bodies once)" if r["loop_extra"]["flops"] > 0 \
      else text


def _largest_cell(r: dict[str, Any], searches: dict) -> str:
  """The largest global batch: this compile when a search verified it
  as the largest, else predicted from this compile."""
  found = searches.get((r["case"]["config"], r["case"]["topology"]))
  if found and found.get("verified") and found.get("result") == r["id"]:
    return f"{found['batch']:,}"  # this compile is the verified largest
  shards = runner.batch_shards(r)
  per_shard = r["case"]["batch"] // shards
  cap = 1024
  best = runner.predict_per_shard(r["memory"], per_shard,
                                  r["memory"]["hbm"], cap)
  if best <= 0:
    return "none"
  return f"{'≥' if best == cap else '~'}{best * shards:,}"


def cases_table(out_dir: str, kinds=("teacher", "distilled", "student"),
                where=None) -> str:
  """Markdown: every compiled case that fits (and `where(result)`), at the
  batch it was compiled with (docs/benchmarks.md §6). '~' marks a largest
  batch predicted from that compile (peak HBM is affine in the batch),
  '≥' one at the prediction's cap; bare, a compile at that batch fitted."""
  searches, cases = load_results(out_dir)
  by_cell = {(s["config"], s["topology"]): s for s in searches}
  order = {v: i for i, v in enumerate(("S/16", "B/16", "L/16", "g/14"))}
  topo = {t: i for i, t in enumerate(chips.TOPOLOGIES)}
  rows_ = sorted(
      (r for r in cases.values() if r.get("memory") and r["kind"] in kinds
       and (where is None or where(r))),
      key=lambda r: (kinds.index(r["kind"]), order.get(r["variant"], 9),
                     topo.get(r["case"]["topology"], 99), r["sharding"],
                     r["case"]["batch"]))
  lines = ["| step | variant | rules | topology | mesh | global batch | "
           "HBM per chip | largest batch | roofline step (bound) | "
           "collectives (share) | MFU | pairs/s per chip | cost model | "
           "code |", "|" + "---|" * 14]
  g = analysis.gib
  for r in rows_:
    mem, roof = r["memory"], r["roofline"]
    lines.append(
        f"| {r['kind']} | {r['variant']} | {r['sharding']} | "
        f"{r['case']['topology']} | "
        f"{'x'.join(str(v) for v in r['mesh'].values())} | "
        f"{r['case']['batch']:,} | {g(mem['peak']):.1f} of "
        f"{g(mem['hbm']):.0f} GiB | {_largest_cell(r, by_cell)} | "
        f"{analysis.fmt_seconds(roof['t_roofline'])} ({roof['bound'][:3]})"
        f" | {analysis.fmt_seconds(roof['t_collectives'])} "
        f"({100 * roof['collective_share']:.1f}%) | "
        f"{100 * roof['mfu']:.0f}% | "
        f"{roof['examples_per_s_per_chip']:.1f} | {_cost_model_cell(r)} | "
        f"{r['versions'].get('code', 'pre-merge')} |")
  return "\n".join(lines)
