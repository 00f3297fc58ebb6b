"""Cases, their cached results, and the search for the largest batch.

A case is (config spec, topology, global batch). Compiling one takes from
tens of seconds (test sizes) to many minutes (L/16 on 256 chips on a
loaded 2-core machine), so every result is a JSON file named after its
case: a rerun skips what is done, and an interrupted sweep resumes.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import math
import os
import re
import time
from typing import Any

from jaxpain.aot import analysis, chips, hlo, hlo_cost
from jaxpain.aot import compile as aot_compile


class OutOfMemory(RuntimeError):
  """The step does not fit in the chip's HBM."""


@dataclasses.dataclass(frozen=True)
class Case:
  """One compile: a config (file[:args]) for a topology at a global batch."""

  config: str
  topology: str
  batch: int
  source_size: int = 256
  augment_cost: bool = True  # also compile the augmentation alone

  @property
  def id(self) -> str:
    slug = re.sub(r"[^A-Za-z0-9=.]+", "_", self.config.replace(
        "configs/", "").replace(".py", ""))
    return f"{slug}__{self.topology}__b{self.batch}"


def _write(path: str, obj: Any) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1, sort_keys=True, default=str)
  os.replace(tmp, path)


def _read(path: str) -> dict | None:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def compile_case(case: Case, hlo_path: str | None = None
                 ) -> dict[str, Any]:
  """Compiles and analyses one case (no cache). See analysis.py.

  The optimized HLO goes to `hlo_path` (gzip), so the analysis can be
  redone later without recompiling (`reanalyse`).
  """
  topo = chips.get(case.topology)
  devices = chips.devices(topo)
  config = aot_compile.load_config(case.config)
  config.batch_size = case.batch
  base = {"case": dataclasses.asdict(case), "id": case.id,
          "versions": aot_compile.versions(), "chip": topo.chip.name,
          "chips": topo.num_chips, "slices": topo.num_slices,
          "variant": config.model.variant, "sharding": config.sharding,
          "kind": aot_compile.step_kind(config)}
  t0 = time.perf_counter()
  try:
    low = aot_compile.lower_and_compile(config, devices, case.source_size)
  except Exception as e:  # XlaRuntimeError: RESOURCE_EXHAUSTED
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    return dict(base, fits=False, compile_s=time.perf_counter() - t0,
                error=_out_of_memory(str(e), config, topo, case))
  mem = analysis.memory(low.compiled, topo.chip)
  text = low.compiled.as_text()
  if hlo_path:
    os.makedirs(os.path.dirname(hlo_path), exist_ok=True)
    with gzip.open(hlo_path, "wt") as f:
      f.write(text)
  out = dict(base, fits=mem["peak"] <= mem["hbm"],
             mesh=dict(low.mesh.shape), lower_s=low.lower_s,
             compile_s=low.compile_s, memory=mem,
             cost_xla=analysis.cost(low.compiled),
             model_flops_per_example=analysis.model_flops_per_example(
                 low.config))
  out.update(_from_hlo(hlo.parse(text), low.mesh))
  if case.augment_cost:
    out["augment"] = augment_cost(low.config, devices, case.source_size)
  return derive(out)


def augment_cost(config, devices, source_size: int) -> dict[str, float]:
  """XLA's cost of the step's augmentation alone (see compile.py), and its
  HBM traffic read as the step's is (hbm_bytes)."""
  compiled = aot_compile.compile_augmentation(config, devices, source_size)
  module = hlo.parse(compiled.as_text())
  return dict(analysis.cost(compiled),
              hbm_bytes=hlo_cost.bytes_accessed(module))


def _from_hlo(module: hlo.Module, mesh) -> dict[str, Any]:
  """The figures read from the optimized HLO (see hlo.py)."""
  return {"loop_extra": analysis.loop_extra(module),
          "collective_records": analysis.collective_records(
              module, list(mesh.devices.flat)),
          "largest_buffers": analysis.largest_buffers(module)}


def reanalyse(result: dict[str, Any], hlo_path: str) -> dict[str, Any]:
  """Re-reads a stored HLO (after a change to hlo.py / analysis.py)."""
  from jaxpain import sharding as shd

  case = Case(**result["case"])
  config = aot_compile.load_config(case.config)
  mesh = shd.mesh_from_config(config, chips.devices(chips.get(
      case.topology)))
  with gzip.open(hlo_path, "rt") as f:
    module = hlo.parse(f.read())
  return derive(dict(result, **_from_hlo(module, mesh)))


def derive(r: dict[str, Any]) -> dict[str, Any]:
  """Adds the derived figures (totals, collectives, roofline) to a result.

  Everything here follows from the raw fields a compile stored, so the
  model (bandwidths, conventions) can change without recompiling.
  """
  if not r.get("memory"):
    return r
  chip = chips.CHIPS[r["chip"]]
  cost, extra = r["cost_xla"], r["loop_extra"]
  r["flops"] = cost["flops"] + extra["flops"]
  r["bytes"] = extra.get("hbm_bytes", cost["bytes"])
  examples = r["case"]["batch"] / r["chips"]
  r["model_flops"] = r["model_flops_per_example"] * examples
  r["collectives"] = analysis.collective_table(r["collective_records"],
                                               chip)
  coll_s = sum(c["seconds"] for c in r["collectives"])
  r["roofline"] = analysis.roofline(
      r["flops"], r["bytes"], coll_s, chip, r["model_flops"], examples,
      cost["optimal_seconds"])
  if r.get("augment"):
    aug = r["augment"]
    aug["share_of_bytes"] = aug["bytes"] / max(cost["bytes"], 1.0)
    if "hbm_bytes" in aug:
      aug["share_of_hbm"] = aug["hbm_bytes"] / max(r["bytes"], 1.0)
  return r


def _out_of_memory(message: str, config, topo: chips.Topology,
                   case: Case) -> dict[str, Any]:
  """XLA's one-line verdict, plus the largest buffers: XLA names none, so
  the program is compiled again for the same number of v5p chips (95 GiB
  each), where it may fit, and read there."""
  out = {"message": message.strip().splitlines()[0][:400], "buffers": []}
  twin = chips.larger_memory_twin(topo)
  if twin is None:
    return out
  try:
    low = aot_compile.lower_and_compile(config, chips.devices(twin),
                                        case.source_size)
  except Exception as e:  # too big for v5p as well
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    return out
  mem = analysis.memory(low.compiled, twin.chip)
  out["needs"] = mem["peak"]
  out["buffers"] = analysis.largest_buffers(
      hlo.parse(low.compiled.as_text()))
  out["buffers_from"] = f"the same step compiled for {twin.shape} v5p"
  return out


def run_case(case: Case, out_dir: str, force: bool = False
             ) -> dict[str, Any]:
  """`compile_case` with the JSON cache in out_dir/cases/ (HLO in hlo/)."""
  path = os.path.join(out_dir, "cases", f"{case.id}.json")
  hlo_path = os.path.join(out_dir, "hlo", f"{case.id}.hlo.gz")
  cached = None if force else _read(path)
  if cached is not None:
    if case.augment_cost and cached.get("fits") and "hbm_bytes" not in (
        cached.get("augment") or {}):  # a probe, now reported: add it
      config = aot_compile.load_config(case.config)
      config.batch_size = case.batch
      cached["augment"] = augment_cost(
          config, chips.devices(chips.get(case.topology)), case.source_size)
      _write(path, cached)
    return derive(cached)
  logging.info("compiling %s", case.id)
  result = compile_case(case, hlo_path)
  _write(path, result)
  return result


def reanalyse_all(out_dir: str) -> int:
  """Re-reads every stored HLO of out_dir; returns how many were updated."""
  done = 0
  for name in sorted(os.listdir(os.path.join(out_dir, "cases"))):
    path = os.path.join(out_dir, "cases", name)
    hlo_path = os.path.join(out_dir, "hlo", name[:-len(".json")]
                            + ".hlo.gz")
    result = _read(path)
    if result and result.get("memory") and os.path.exists(hlo_path):
      _write(path, reanalyse(result, hlo_path))
      done += 1
  return done


def require_fit(result: dict[str, Any]) -> None:
  """Raises OutOfMemory naming the largest buffers (one clear message)."""
  if result.get("fits", True):
    return
  mem = result.get("memory")
  if mem:
    need = f"needs {analysis.gib(mem['peak']):.2f} GiB of " \
           f"{analysis.gib(mem['hbm']):.0f} GiB HBM per chip"
    bufs = "; ".join(result.get("largest_buffers", [])[:3])
  else:
    err = result.get("error", {})
    need = err.get("message", "does not fit in HBM").rstrip(".")
    bufs = "; ".join(err.get("buffers", [])[:3])
    if err.get("buffers_from"):
      bufs += f" (from {err['buffers_from']})"
  raise OutOfMemory(
      f"{result['id']}: {need}. Largest buffers: {bufs or 'n/a'}. Lower "
      "the batch, or shard more (sharding=fsdp / fsdp_tp, remat).")


def largest_batch(config: str, topology: str, out_dir: str,
                  per_shard: int = 8, max_per_shard: int = 1024,
                  source_size: int = 256, verify: bool = True
                  ) -> dict[str, Any]:
  """The largest global batch that fits, and the result to report.

  One compile at `per_shard` examples per batch shard splits peak HBM into
  a fixed part (state, code: arguments + outputs + code - aliases) and a
  per-example part (temporaries / examples), which predicts the largest
  batch. With `verify` a second compile at that batch checks it (stepping
  down 10% while it does not fit) and is the result reported; without, the
  probe is (its figures are at the probe's batch).
  """
  path = os.path.join(out_dir, "search", _search_id(config, topology)
                      + ".json")
  done = _read(path)
  if done is not None and (done.get("verified") or not verify):
    return done
  topo = chips.get(topology)
  shards = _batch_shards(aot_compile.load_config(config), topo)
  hbm = float(topo.chip.hbm_bytes)
  probe = run_case(Case(config, topology, per_shard * shards, source_size,
                        False), out_dir)
  tries = [per_shard]
  while not probe["fits"] and per_shard > 1:
    per_shard //= 2
    tries.append(per_shard)
    probe = run_case(Case(config, topology, per_shard * shards, source_size,
                          False), out_dir)
  best = 0
  if probe["fits"]:
    best = max(predict_per_shard(probe["memory"], per_shard, hbm,
                                 max_per_shard), per_shard)
  predicted, result = best, probe
  while verify and best > per_shard:
    result = run_case(Case(config, topology, best * shards, source_size,
                           False), out_dir)
    tries.append(best)
    if result["fits"]:
      break
    best = max(per_shard, int(best * 0.9))
    result = probe
  summary = {"config": config, "topology": topology, "shards": shards,
             "per_shard": best, "batch": best * shards,
             "predicted_per_shard": predicted, "tries": tries,
             "verified": bool(verify and result is not probe
                              or best == per_shard),
             "result": result["id"] if result and result["fits"] else None}
  _write(path, summary)
  return summary


def predict_per_shard(mem: dict[str, float], per_shard: int, hbm: float,
                      max_per_shard: int = 1024) -> int:
  """Largest examples per batch shard that fit, from one compile.

  Peak HBM is affine in the batch: a fixed part (state, code: peak -
  temporaries) and temporaries per example; 3% of HBM is kept free.
  """
  fixed = mem["peak"] - mem["temp"]
  per_example = max(mem["temp"] / per_shard, 1.0)
  return int(min(max_per_shard, (0.97 * hbm - fixed) // per_example))


def batch_shards(result: dict[str, Any]) -> int:
  """How many ways a compiled case's batch is split (data x fsdp)."""
  mesh = result["mesh"]
  return mesh.get("data", 1) * mesh.get("fsdp", 1)


def _search_id(config: str, topology: str) -> str:
  return Case(config, topology, 0).id.rsplit("__b", 1)[0]


def _batch_shards(cfg, topo: chips.Topology) -> int:
  """How many ways the batch splits on this topology's mesh."""
  from jaxpain import sharding as shd

  mesh = shd.mesh_from_config(cfg, chips.devices(topo))
  return math.prod(mesh.shape[a] for a in cfg.batch_axes
                   if a in mesh.shape)
