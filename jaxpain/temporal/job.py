"""The end-to-end temporal job: simulate -> train -> sample -> evaluate ->
render, over several seeds, then one report.

Per seed s (a different simulated population, model init and data order):
simulate recordings; train the diffusion-forcing model and the
full-sequence baseline (same network, same steps); evaluate both and the
retrieval / random / mean-face baselines on held-out subjects (as many
`length`-frame segments as each test recording holds, S samples each).
Then, with the first seed's model: a BioVid-programme sample as CSV, a step
onset rendered on the synth head (PNG frames), and `report.md` with
mean ± sd over seeds, per-seed wins on PainCorr and PainSim, and plots.

Every stage resumes: finished training runs return at once, so a killed
job continues where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

import numpy as np

from jaxpain.temporal import commands, evaluate, paired, report
from jaxpain.temporal import data as data_lib
from jaxpain.temporal import train as train_lib
from synth import sequences as sq

OURS, FULL = "diffusion forcing", "full-sequence"
SAMPLE_SECONDS = 30.0  # the BioVid sample written as CSV
RENDER_FRAMES = 100  # frames rendered of a step onset (4 s)


def _simulate(config, out: str, seed: int) -> None:
  s = config.simulate
  counts = {"train": s.train, "val": s.val, "test": s.test}
  if os.path.isdir(os.path.join(out, "test")):
    _check_simulated(out, seed, counts)
    return
  data_lib.simulate_splits(out, seed, counts, s.programmes, s.duration_s,
                           s.test_duration_s, progress=True)


def _check_simulated(out: str, seed: int, counts: dict[str, int]) -> None:
  """A resumed job must not train on data simulated for another setting
  (a changed config would otherwise silently reuse the old population)."""
  for split, n in counts.items():
    if n <= 0:
      continue
    path = os.path.join(out, split, "meta.json")
    meta = None
    if os.path.isfile(path):
      with open(path) as f:
        meta = json.load(f)
    if (meta is None or meta.get("seed") != seed
        or len(meta.get("subject_ids", ())) != n):
      found = ("nothing" if meta is None else
               f"seed {meta.get('seed')}, "
               f"{len(meta.get('subject_ids', ()))} subjects")
      raise commands.UsageError(
          f"{out}/{split} holds {found}, the config asks seed {seed}, {n} "
          "subjects: give the job a new --out (or remove that folder)")


def _train(spec: str, seed: int, data_dir: str, workdir: str) -> float:
  config = commands.load_config(f"{spec},seed={seed}" if ":" in spec
                                else f"{spec}:seed={seed}")
  config.data.dir = data_dir
  t0 = time.process_time()
  train_lib.train(config, workdir)
  return time.process_time() - t0


def run_seed(out: str, seed: int, spec: str, full_spec: str,
             samples: int = 3, length: int = 400) -> dict:
  """One seed: data, two trainings, evaluation; returns its metrics."""
  root = os.path.join(out, f"seed{seed}")
  config = commands.load_config(spec)
  data_dir = os.path.join(root, "data")
  _simulate(config, data_dir, seed)
  cpu = {OURS: _train(spec, seed, data_dir, os.path.join(root, "df")),
         FULL: _train(full_spec, seed, data_dir, os.path.join(root, "full"))}
  per_rec = max(1, int(config.simulate.test_duration_s * sq.FPS) // length)
  res = evaluate.run({OURS: os.path.join(root, "df"),
                      FULL: os.path.join(root, "full")}, data_dir, samples,
                     length, per_rec, seed=seed, progress=True)
  summary = evaluate.save(res, os.path.join(root, "eval"))
  summary["train_cpu_s"] = cpu
  with open(os.path.join(root, "eval", "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  summary["per_segment"] = _per_segment(res, os.path.join(root, "eval"))
  return summary


def _per_segment(res: dict, eval_dir: str) -> dict[str, dict]:
  """Every method's per-segment scores, also saved as
  eval/per_segment.npz ('method/metric' arrays)."""
  out = res["per_segment"]
  np.savez(os.path.join(eval_dir, "per_segment.npz"),
           **{f"{k}/{m}": v for k, ms in out.items() for m, v in ms.items()})
  return out


def _sample_and_render(out: str, seed: int) -> dict:
  """A BioVid-programme sample as CSV; a step onset of an expressive
  subject (expressiveness 10) rendered on the synth head."""
  wd = os.path.join(out, f"seed{seed}", "df")
  csv_path = os.path.join(out, "sample_biovid.csv")
  res = commands.cmd_sample(commands.parser().parse_args(
      ["sample", "--workdir", wd, "--programme", "biovid", "--duration",
       str(SAMPLE_SECONDS), "--out", csv_path]))
  step_csv = os.path.join(out, "sample_step.csv")
  commands.cmd_sample(commands.parser().parse_args(
      ["sample", "--workdir", wd, "--programme", "step", "--duration",
       str(RENDER_FRAMES / sq.FPS + 1.0), "--expressiveness", "10",
       "--out", step_csv]))
  au = np.loadtxt(step_csv, delimiter=",", skiprows=1)[:RENDER_FRAMES, 4:-1]
  res["frames_dir"] = commands.render(au.astype(np.float32),
                                      os.path.join(out, "frames"), 0, 96)
  return res


def wins(per_seed: Sequence[dict]) -> dict[str, str]:
  """Per baseline: on how many seeds ours beats it on PainCorr AND
  PainSim."""
  out = {}
  for other in per_seed[0]["metrics"]:
    if other in (OURS, evaluate.CEILING):
      continue
    n = sum(s["metrics"][OURS]["PainCorr"] > s["metrics"][other]["PainCorr"]
            and s["metrics"][OURS]["PainSim"] < s["metrics"][other]["PainSim"]
            for s in per_seed)
    out[other] = f"{n}/{len(per_seed)}"
  return out


def run(out: str, seeds: Sequence[int], spec: str = "configs/temporal.py:"
        "small", full_spec: str = "configs/temporal_fullseq.py:small",
        samples: int = 3, length: int = 400) -> dict:
  """The whole job; writes `out/report.md` and returns its numbers."""
  if len(seeds) < 1:
    raise ValueError("give at least one seed")
  os.makedirs(out, exist_ok=True)
  t0 = time.time()
  per_seed = [run_seed(out, s, spec, full_spec, samples, length)
              for s in seeds]
  sample = _sample_and_render(out, seeds[0])
  agg = report.aggregate([s["metrics"] for s in per_seed])
  ref = report.aggregate([{"gt": s["reference"]} for s in per_seed])["gt"]
  bars = report.plot_metrics(agg, os.path.join(out, "metrics.png"))
  comparison = paired.compare([s["per_segment"] for s in per_seed], OURS)
  result = {"seeds": list(seeds), "metrics": agg,
            "reference": {k: v[0] for k, v in ref.items()},
            "wins_corr_and_sim": wins(per_seed), "paired": comparison,
            "sample": sample,
            "plots": [bars] + per_seed[0]["plots"],
            "train_cpu_s": [s["train_cpu_s"] for s in per_seed],
            "wall_s": time.time() - t0}
  _write_report(out, result, spec, full_spec)
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(result, f, indent=2, default=str)
  return result


def _write_report(out: str, r: dict, spec: str, full_spec: str) -> None:
  lines = [
      "# Temporal job: PainDiffusion in AU space, end to end", "",
      f"Seeds {r['seeds']}; configs `{spec}` (ours) and `{full_spec}` "
      "(full-sequence baseline). Held-out simulated subjects; mean ± sd "
      "over seeds (sample sd); metrics on the frames after the "
      "ground-truth context. PainCorr is the mean over samples; "
      "PainCorr_max is the max over samples, as the released code reports "
      "it.", "",
      report.table(r["metrics"], r["reference"]), "",
      "Seeds on which ours beats each baseline on both PainCorr and "
      "PainSim: " + ", ".join(f"{k} {v}" for k, v in
                               r["wins_corr_and_sim"].items()) + ".", "",
      "Paired on the same segments (`jaxpain.temporal.paired`): ours' "
      "mean advantage over each method (> 0: ours better; PainCorr "
      "higher, PainSim and PainDist lower), the mean over seeds of each "
      "seed's mean over segments, with a 95% two-level bootstrap interval "
      "(seeds, then segments), and the seeds on which ours is ahead. An "
      "interval that contains 0 does not separate the two.", "",
      paired.table(r["paired"]), "",
      f"Wall time {r['wall_s'] / 60:.1f} min.", "",
      "![metrics](metrics.png)", ""]
  for p in r["plots"][1:]:
    lines.append(f"![segment]({os.path.relpath(p, out)})")
  with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
