"""The main job's report: seeds summarised, targets checked, curves drawn.

`jaxpain.main_job` trains each student on several seeds; one seed's figure
says little when seeds disagree by more than the effect being claimed, so
every figure here is a mean +- sd over seeds, next to a constant predictor
(the train mean, the floor a model must beat), and every comparison the
issue sets as a target (#15) says whether it is met and whether it is
larger than the seed spread.

Writes into the report folder: `metrics.json` (per run: per-seed figures,
mean, sd; the constant row; the teacher; the targets; stage seconds),
`report.md` (the same as tables) and `curves.png` (teacher and students,
train loss and validation MAE on shared axes).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

# Test metrics in the headline table, in order, and their labels.
KEYS = (("mae", "MAE"), ("pearson", "r"), ("auroc_1", "AUROC>=1"),
        ("auroc_2", "AUROC>=2"), ("auroc_3", "AUROC>=3"),
        ("f1_macro", "F1"), ("mae_au_mean", "AU MAE"))
# What each run is, for the tables (names follow jaxpain.main_job.STUDENTS).
DESCRIPTIONS = {
    "student_distill": "RGB + neutral, distilled from the teacher",
    "student_no_teacher": "RGB + neutral, no teacher",
    "student_no_neutral": "RGB only, no teacher, no neutral",
    "constant": "the train split's mean PSPI for every image",
}
# (split, metric) of metrics.jsonl rows drawn in curves.png, left and right.
CURVES = (("train", "loss"), ("val", "mae"))


def mean_sd(values) -> tuple[float, float]:
  """Mean and sample sd (ddof 1; 0 for one value) of the finite values."""
  vals = [float(v) for v in values if v is not None and math.isfinite(v)]
  if not vals:
    return math.nan, math.nan
  mean = sum(vals) / len(vals)
  if len(vals) < 2:
    return mean, 0.0
  var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
  return mean, math.sqrt(var)


def summarise(per_seed: Mapping[int, Mapping[str, float]],
              description: str) -> dict:
  """{"description", "per_seed", "mean", "sd"} of one run over its seeds."""
  keys = sorted({k for m in per_seed.values() for k in m})
  stats = {k: mean_sd([m.get(k) for m in per_seed.values()]) for k in keys}
  return {"description": description,
          "per_seed": {str(s): dict(m) for s, m in per_seed.items()},
          "mean": {k: v[0] for k, v in stats.items()},
          "sd": {k: v[1] for k, v in stats.items()}}


def teacher_test_metrics(teacher_dir: str) -> dict:
  """The trainer's own test pass of the teacher (best checkpoint), if any.

  The teacher sees heatmaps, not RGB, so it is scored by the trainer on
  heatmap inputs rather than by the RGB evaluator; it shows what the
  pipeline learns from a direct signal.
  """
  from jaxpain.train import metrics_writer

  path = os.path.join(teacher_dir, "metrics.jsonl")
  rows = [r for r in metrics_writer.read_jsonl(path)
          if r.get("split") == "test"] if os.path.exists(path) else []
  if not rows:
    return {}
  last = rows[-1]
  return {"step": int(last["step"]), "mae": float(last["mae"]),
          "pearson": float(last["pearson_r"])}


def _relative_gain(runs: dict, better: str, worse: str) -> dict:
  """How much lower `better`'s MAE is than `worse`'s, and vs the spread."""
  b, w = runs[better], runs[worse]
  diff = w["mean"]["mae"] - b["mean"]["mae"]
  spread = math.hypot(b["sd"]["mae"], w["sd"]["mae"])
  return {"value": diff / w["mean"]["mae"], "mae_difference": diff,
          "seed_spread": spread, "within_spread": abs(diff) <= spread}


def targets(runs: dict) -> list[dict]:
  """The issue's targets: measured value, threshold, met or not.

  Only the targets whose runs are present (`--students` may pick some).
  """
  out = []
  if "student_distill" in runs:
    d, c = runs["student_distill"], runs["constant"]
    out += [
        {"name": "distilled student: Pearson r >= 0.8", "value":
         d["mean"]["pearson"], "sd": d["sd"]["pearson"], "threshold": 0.8,
         "met": d["mean"]["pearson"] >= 0.8},
        {"name": "distilled student: MAE <= half the constant's",
         "value": d["mean"]["mae"], "sd": d["sd"]["mae"],
         "threshold": c["mean"]["mae"] / 2,
         "met": d["mean"]["mae"] <= c["mean"]["mae"] / 2},
    ]
  for name, better, worse, need in (
      ("neutral reference lowers MAE >= 15% (no teacher)",
       "student_no_teacher", "student_no_neutral", 0.15),
      ("distillation lowers MAE >= 5% (equal steps)",
       "student_distill", "student_no_teacher", 0.05)):
    if better not in runs or worse not in runs:
      continue
    gain = _relative_gain(runs, better, worse)
    out.append({"name": name, **gain, "threshold": need,
                "met": gain["value"] >= need})
  return out


def degenerate_thresholds(runs: dict) -> list[str]:
  """AUROC thresholds whose test split lacks a class (NaN on every seed)."""
  out = []
  for key, label in KEYS:
    if key.startswith("auroc") and all(
        not math.isfinite(_num(r["mean"].get(key)))
        for n, r in runs.items() if n != "constant"):
      out.append(label)
  return out


def _num(value) -> float:
  return math.nan if value is None else float(value)


def build(results: Mapping[str, Mapping[int, Mapping[str, float]]],
          constant: Mapping[str, float], teacher: Mapping | None,
          args: Mapping, stage_seconds: Mapping[str, float]) -> dict:
  """The metrics.json object."""
  runs = {name: summarise(per_seed, DESCRIPTIONS.get(name, name))
          for name, per_seed in results.items()}
  const = {k: v for k, v in constant.items()}
  runs["constant"] = {"description": DESCRIPTIONS["constant"],
                      "per_seed": {}, "mean": const,
                      "sd": {k: 0.0 for k in const}}
  return _json_safe({"runs": runs, "teacher": dict(teacher or {}),
          "targets": targets(runs),
          "degenerate_thresholds": degenerate_thresholds(runs),
          "stage_seconds": dict(stage_seconds),
          "total_seconds": round(sum(stage_seconds.values()), 1),
          "config": {k: v for k, v in args.items()
                     if isinstance(v, int | float | str | bool | None)}})


def _json_safe(obj):
  """NaN (an undefined figure, e.g. AUROC without negatives) -> None."""
  if isinstance(obj, dict):
    return {k: _json_safe(v) for k, v in obj.items()}
  if isinstance(obj, list):
    return [_json_safe(v) for v in obj]
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  return obj


def _cell(run: dict, key: str) -> str:
  mean, sd = _num(run["mean"].get(key)), _num(run["sd"].get(key))
  if not math.isfinite(mean):
    return "n/a"
  return f"{mean:.3f}" if not run["per_seed"] else f"{mean:.3f} ± {sd:.3f}"


def headline_table(metrics: dict) -> list[str]:
  """Markdown rows: one per run, mean ± sd over seeds."""
  lines = ["| run | seeds | " + " | ".join(label for _, label in KEYS) + " |",
           "|---|---|" + "---|" * len(KEYS)]
  for name, run in metrics["runs"].items():
    cells = [_cell(run, k) for k, _ in KEYS]
    lines.append(f"| {name} ({run['description']}) | "
                 f"{len(run['per_seed']) or '-'} | " + " | ".join(cells)
                 + " |")
  return lines


def _target_lines(metrics: dict) -> list[str]:
  lines = ["| target | measured | needed | met |", "|---|---|---|---|"]
  for t in metrics["targets"]:
    if "mae_difference" in t:
      got = (f"{100 * t['value']:.1f}% (MAE {t['mae_difference']:+.3f}, "
             f"seed spread ±{t['seed_spread']:.3f}"
             + (": within the spread)" if t["within_spread"] else ")"))
      need = f"{100 * t['threshold']:.0f}%"
    else:
      got = f"{t['value']:.3f} ± {_num(t.get('sd')):.3f}"
      need = f"{t['threshold']:.3f}"
    lines.append(f"| {t['name']} | {got} | {need} | "
                 f"{'yes' if t['met'] else 'NO'} |")
  return lines


def markdown(metrics: dict) -> str:
  """report.md."""
  a, secs = metrics["config"], metrics["stage_seconds"]
  lines = [
      "# jaxpain main job", "",
      f"Dataset 3dpain/{a['dataset']}, model input {a['image_size']} px, "
      f"ViTPain {a['variant']} (patch {a['patch_size']}) from scratch, "
      f"{a['steps']} steps per student (teacher {a['teacher_steps']}), "
      f"batch {a['batch']}, lr {a['lr']:g} with {a['warmup']} warmup "
      f"steps; seeds {a['seed']}..{a['seed'] + a['seeds'] - 1}.", "",
      "Held-out test identities, PSPI 0..16; mean ± sd over seeds.", "",
      *headline_table(metrics), ""]
  t = metrics["teacher"]
  if t:
    lines += [f"Heatmap teacher (seed {a['seed']}, the trainer's test pass "
              f"at step {t['step']}, heatmap input): MAE {t['mae']:.3f}, "
              f"Pearson r {t['pearson']:.3f}.", ""]
  deg = metrics["degenerate_thresholds"]
  lines += ["Degenerate thresholds (one class absent from the test split): "
            + (", ".join(deg) if deg else "none") + ".", "",
            "## Targets (issue #15)", "", *_target_lines(metrics), "",
            "## Time per stage", "",
            "| stage | seconds |", "|---|---|",
            *[f"| {k} | {v:.0f} |" for k, v in secs.items()],
            f"| total | {metrics['total_seconds']:.0f} |", "",
            "Per-seed figures are in metrics.json; per-run folders hold the "
            "scatter plot, ROC curves, per-AU errors and the worst "
            "predictions; `curves.png` the training curves; "
            "`contact_sheet.png` the data."]
  return "\n".join(lines) + "\n"


def write_report(report_dir: str, results, constant, teacher, args,
                 stage_seconds) -> str:
  """Writes metrics.json, report.md and curves.png; returns report.md."""
  metrics = build(results, constant, teacher, args, stage_seconds)
  _write(os.path.join(report_dir, "metrics.json"),
         json.dumps(metrics, indent=2))
  path = os.path.join(report_dir, "report.md")
  _write(path, markdown(metrics))
  curves(report_dir, os.path.dirname(os.path.abspath(report_dir)))
  return path


def headline(report_dir: str) -> str:
  """The headline table and targets, as printed at the end of the job."""
  with open(os.path.join(report_dir, "metrics.json")) as f:
    metrics = json.load(f)
  return "\n".join([*headline_table(metrics), "", *_target_lines(metrics)])


def _write(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def _run_dirs(workdir: str) -> dict[str, list[str]]:
  """Run name -> its metrics.jsonl files (one per seed; one for the teacher)."""
  out = {}
  for name in ("teacher", *DESCRIPTIONS):
    base = os.path.join(workdir, name)
    paths = [os.path.join(base, "metrics.jsonl")]
    if os.path.isdir(base):
      paths += [os.path.join(base, d, "metrics.jsonl")
                for d in sorted(os.listdir(base)) if d.startswith("seed")]
    paths = [p for p in paths if os.path.exists(p)]
    if paths:
      out[name] = paths
  return out


def curves(report_dir: str, workdir: str) -> None:
  """curves.png: every run's train loss and validation MAE, shared axes."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from jaxpain.train import metrics_writer

  fig, ax = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for color, (name, paths) in zip(colors, _run_dirs(workdir).items(),
                                  strict=False):
    for i, path in enumerate(paths):
      rows = metrics_writer.read_jsonl(path)
      for a, (split, key) in zip(ax, CURVES, strict=True):
        pts = [(r["step"], r[key]) for r in rows
               if r.get("split") == split and key in r]
        if pts:
          a.plot(*zip(*pts, strict=True), color=color, marker=".",
                 alpha=0.8, label=name if i == 0 else None)
  for a, title in zip(ax, ("train loss (task + distillation)",
                           "validation MAE (PSPI)"), strict=True):
    a.set_title(title)
    a.set_xlabel("step")
    a.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(report_dir, "curves.png"), dpi=110)
  plt.close(fig)
