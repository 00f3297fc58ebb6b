"""From a compiled step to per-chip figures: HBM, roofline, collectives.

Conventions (docs/benchmarks.md, "TPU ahead-of-time compile"):
- Per chip. HBM peak = arguments + outputs + temporaries + code - aliases
  (donated state aliases its output).
- FLOPs: XLA's `cost_analysis()`, plus what it leaves out: it counts a
  while-loop body once, so the scanned backbone's other `trips - 1`
  iterations are added from our reading of the HLO (`hlo_cost.flops`: matmul
  FLOPs; checked against an unrolled program: 98% of XLA's count).
- Bytes: HBM traffic from our reading of the HLO (`hlo_cost.bytes_accessed`:
  operands and results of top-level instructions in HBM, loops x trips).
  XLA's 'bytes accessed' also counts on-chip (VMEM) traffic: 4.5x the HBM
  figure for an unrolled 8-layer MLP; it is kept in the JSON for reference.
- Roofline step time = max(FLOPs / bf16 peak, HBM bytes / HBM bandwidth).
  `optimal_seconds` (XLA's TPU cost model) is kept only where positive.
- Collectives: XLA's cost model leaves them out of both figures, so their
  time is added from bandwidths (ring algorithms; hierarchical ICI + DCN
  when a group spans slices; chips.py cites the figures). The step
  estimate adds them to the roofline time (no overlap: conservative).
- MFU = model FLOPs (jaxpain.models.flops, analytic, per example) x
  examples per second / peak. The teacher's forward pass counts for a
  distilled student.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any

from jaxpain.aot import chips, hlo, hlo_cost


def memory(compiled, chip: chips.Chip) -> dict[str, float]:
  m = compiled.memory_analysis()
  out = {k: float(getattr(m, f"{k}_size_in_bytes", 0) or 0) for k in
         ("argument", "output", "temp", "alias", "generated_code")}
  out["peak"] = (out["argument"] + out["output"] + out["temp"]
                 + out["generated_code"] - out["alias"])
  out["hbm"] = float(chip.hbm_bytes)
  out["fraction"] = out["peak"] / out["hbm"]
  return out


def cost(compiled) -> dict[str, float]:
  """XLA's own cost analysis (while bodies counted once)."""
  c = compiled.cost_analysis()
  c = (c[0] if c else {}) if isinstance(c, list) else (c or {})
  return {"flops": float(c.get("flops", 0.0)),
          "bytes": float(c.get("bytes accessed", 0.0)),
          "optimal_seconds": float(c.get("optimal_seconds", 0.0))}


def loop_extra(module: hlo.Module) -> dict[str, float]:
  """What XLA's cost analysis leaves out, and HBM traffic, from the HLO.

  flops: matmul FLOPs of loop iterations beyond the first (XLA counts a
  while body once). hbm_bytes: operands read and results written by every
  top-level instruction, in HBM only (arrays in memory space S(1), TPU
  VMEM, cost no HBM bandwidth; XLA's 'bytes accessed' counts them too),
  loop bodies times their trip count.
  """
  real = hlo.structure(module)
  once = hlo.structure(module, trips=False)
  return {
      "flops": hlo_cost.flops(module, real) - hlo_cost.flops(module, once),
      "hbm_bytes": hlo_cost.bytes_accessed(module, real),
      "hbm_bytes_once": hlo_cost.bytes_accessed(module, once),
      "loops": sum(1 for c in module.computations.values() for i in c
                   if i.opcode == "while"),
      "unknown_trip_counts": real.unknown_loops,
  }


# ------------------------------------------------------------ collectives --


def _spans(group: list[int], devices: list) -> tuple[int, int, int]:
  """(slices, chips per slice, torus dimensions) a replica group spans."""
  devs = [devices[i] for i in group if i < len(devices)]
  slices = collections.Counter(getattr(d, "slice_index", 0) or 0
                               for d in devs)
  per_slice = max(slices.values()) if slices else 1
  first = next(iter(slices)) if slices else 0
  coords = [tuple(getattr(d, "coords", ()) or ()) for d in devs
            if (getattr(d, "slice_index", 0) or 0) == first]
  dims = sum(1 for axis in zip(*coords, strict=False) if len(set(axis)) > 1)
  return len(slices), per_slice, dims


def collective_records(module: hlo.Module, devices: list
                       ) -> list[dict[str, Any]]:
  """The program's collectives, merged where identical, with their spans.

  Kept raw (bytes, group spans, executions per step) in the case JSON, so
  their times can be re-derived from other bandwidth figures without a
  recompile (`collective_table`).
  """
  merged: dict[tuple, dict[str, Any]] = {}
  for c in hlo.collectives(module, len(devices)):
    if c.dcn_slices:  # one chip per slice, over DCN
      slices, per_slice, dims = c.dcn_slices, 1, 0
    elif c.groups:
      slices, per_slice, dims = _spans(c.groups[0], devices)
    else:
      slices, per_slice, dims = 1, c.group_size, 1
    key = (c.kind, c.is_async, c.tensors, c.operand_bytes, c.group_size,
           slices, per_slice, dims)
    rec = merged.setdefault(key, {
        "kind": c.kind, "async": c.is_async, "tensors": c.tensors,
        "bytes": c.operand_bytes, "group": c.group_size, "slices": slices,
        "per_slice": per_slice, "dims": dims, "ops": 0, "runs": 0.0,
        "shapes": c.shapes})
    rec["ops"] += 1
    rec["runs"] += c.runs
  return list(merged.values())


def collective_seconds(rec: dict[str, Any], chip: chips.Chip) -> float:
  """Time of one execution per chip: ring algorithms, ICI then DCN.

  A group of s slices x m chips per slice runs its ICI phase over the
  torus dimensions it spans and its DCN phase on the 1/m shard each chip
  holds (hierarchical all-reduce); all-to-all sends (s-1)/s of its data
  over DCN.
  """
  b, s, m = rec["bytes"], rec["slices"], rec["per_slice"]
  ici, dcn = chip.ici_bw_over(rec["dims"]), chip.dcn_bw
  kind = rec["kind"]
  if kind == "all-gather":
    return b * s * (m - 1) / ici + b * (s - 1) / dcn
  if kind == "reduce-scatter":
    return b * (m - 1) / m / ici + b / m * (s - 1) / s / dcn
  if kind == "all-reduce":
    return 2 * (b * (m - 1) / m / ici + b / m * (s - 1) / s / dcn)
  if kind == "all-to-all":
    return b * (m - 1) / (m * s) / ici + b * (s - 1) / s / dcn
  return b / (dcn if s > 1 else ici)  # collective-permute


def collective_table(records: list[dict[str, Any]], chip: chips.Chip
                     ) -> list[dict[str, Any]]:
  """Collectives grouped by (kind, async, group size, DCN), with times."""
  rows: dict[tuple, dict[str, Any]] = {}
  for rec in records:
    dcn = rec["slices"] > 1
    key = (rec["kind"], rec["async"], rec["group"], dcn)
    row = rows.setdefault(key, {
        "kind": rec["kind"], "async": rec["async"], "group": rec["group"],
        "dcn": dcn, "ops": 0, "runs": 0.0, "tensors": 0.0, "bytes": 0.0,
        "seconds": 0.0, "examples": []})
    row["ops"] += rec["ops"]
    row["runs"] += rec["runs"]
    row["tensors"] += rec["tensors"] * rec["runs"]
    row["bytes"] += rec["bytes"] * rec["runs"]
    row["seconds"] += collective_seconds(rec, chip) * rec["runs"]
    if len(row["examples"]) < 3:
      row["examples"].append(rec["shapes"])
  return sorted(rows.values(), key=lambda r: -r["seconds"])


# --------------------------------------------------------------- roofline --


def roofline(flops: float, nbytes: float, coll_s: float, chip: chips.Chip,
             model_flops: float, examples: float,
             optimal_seconds: float) -> dict[str, Any]:
  """Step time estimates and what they imply (all per chip)."""
  t_flops = flops / chip.peak_bf16
  t_bytes = nbytes / chip.hbm_bw
  t_roof = max(t_flops, t_bytes)
  step = t_roof + coll_s
  out = {
      "t_flops": t_flops, "t_bytes": t_bytes, "t_roofline": t_roof,
      "bound": "compute" if t_flops >= t_bytes else "memory",
      "t_collectives": coll_s, "t_step": step,
      "collective_share": coll_s / step if step else 0.0,
      "examples_per_s_per_chip": examples / step if step else 0.0,
      "mfu": model_flops / (step * chip.peak_bf16) if step else 0.0,
      "mfu_no_collectives": (model_flops / (t_roof * chip.peak_bf16)
                             if t_roof else 0.0),
      "cost_model_s": optimal_seconds if optimal_seconds > 0 else None,
  }
  if optimal_seconds > 0:
    out["mfu_cost_model"] = model_flops / (optimal_seconds * chip.peak_bf16)
  return out


def model_flops_per_example(config) -> float:
  """Analytic train FLOPs of one example (a pair with the reference)."""
  from jaxpain.models import flops, vitpain

  fields = {f.name for f in dataclasses.fields(vitpain.ViTPainConfig)}
  cfg = vitpain.ViTPainConfig(**{k: v for k, v in config.model.items()
                                 if k in fields})
  img = flops.backbone(cfg)
  if cfg.use_neutral:
    work = img.scale(2) + flops.heads_cost(cfg, True)
  else:
    work = img + flops.heads_cost(cfg, False)
  total = work.forward + work.backward
  teacher = config.mode == "student" and (config.teacher.required
                                          or config.teacher.workdir)
  if teacher:
    total += (img + flops.heads_cost(cfg, False)).forward
  return total


def largest_buffers(module: hlo.Module, n: int = 5) -> list[str]:
  """The biggest arrays the program creates (for out-of-memory messages):
  distinct shapes, each with one instruction that produces it."""
  sizes: dict[str, tuple[float, str]] = {}
  for comp, instrs in module.computations.items():
    for i in instrs:
      if i.type_str.startswith("(") or i.opcode in (
          "bitcast", "get-tuple-element") or (
              i.opcode == "parameter" and comp != module.entry):
        continue  # tuples, views and fused parameters alias other buffers
      shape = i.type_str.split("{")[0]
      if shape not in sizes:
        sizes[shape] = (i.nbytes, f"{shape} {i.opcode} %{i.name}")
  ranked = sorted(sizes.values(), key=lambda x: -x[0])[:n]
  return [f"{b / 2**30:.2f} GiB {label}" for b, label in ranked]


def gib(x: float) -> float:
  return x / 2**30


def fmt_seconds(s: float | None) -> str:
  if s is None or not math.isfinite(s):
    return "n/a"
  if s >= 1:
    return f"{s:.2f} s"
  return f"{s * 1e3:.2f} ms"
