"""The main job: 3DPain from scratch to an evaluated, distilled ViTPain.

  python -m jaxpain.main_job --workdir runs/main       # (scripts/main_job.sh)

Stages, in order, each resumable (a rerun skips the stages whose outputs
exist, so an interrupted job picks up where it stopped):

  1. dataset   synthesize a small 3DPain with the embedded MakeHuman head and
               build it as the TFDS dataset `3dpain/<config>` (ArrayRecord);
               a contact sheet of the identities goes to the report.
  2. teacher   ViTPain on pain-region heatmaps (configs/teacher.py).
  3. students  the RGB student with the neutral reference distilled from the
               frozen teacher (configs/student_distill.py), and two ablations
               trained the same way: without the teacher, and without the
               teacher and the neutral reference (configs/baseline.py).
  4. evaluate  each student on the held-out test identities (jaxpain.eval).
  5. report    metrics JSON + Markdown table, loss curves, scatter plots,
               sample predictions, in `<workdir>/report/`.

The defaults fit a 2-core CPU in 11-13 minutes (`3dpain/demo`: 36
identities at 64 px, a Ti/16 model with 8-px patches, 600 steps per run,
trained from scratch: there are no pretrained weights offline); `--dataset
small`, `--image-size`, `--variant` and `--steps` scale it up. At the default
scale the teacher learns (heatmaps are a direct signal) while the RGB
students stay near a constant prediction: see docs/training.md, "The main
job", for the measured figures and why.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import time

from synth import cli_errors

# The trainer may use several simulated CPU devices for its mesh; nothing here
# needs more than one, and jax must not initialise before this is decided.
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROG = "python -m jaxpain.main_job"
STUDENTS = {
    # name: (config file, extra config args, description)
    "student_distill": ("student_distill", "", "RGB + neutral, distilled"),
    "student_no_teacher": ("baseline", "", "RGB + neutral, no teacher"),
    "student_no_neutral": ("baseline", "neutral=0",
                           "RGB only, no teacher, no neutral"),
}


def parse_args(argv=None) -> argparse.Namespace:
  p = cli_errors.ArgumentParser(prog=PROG,
                                description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", default="runs/main")
  p.add_argument("--dataset", default="demo",
                 help="3dpain config: demo (36 identities, 64 px), small "
                 "(100, 256 px), full (2,500, 256 px)")
  p.add_argument("--image-size", type=int, default=64,
                 help="model input size (images are resized to it)")
  p.add_argument("--variant", default="Ti/16")
  p.add_argument("--patch-size", type=int, default=8)
  p.add_argument("--steps", type=int, default=600, help="train steps per run")
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--mesh", default=None,
                 help="device mesh data.fsdp.tensor covering all devices, e.g. "
                 "2.2.2 (default: all devices on the data axis)")
  p.add_argument("--fresh", action="store_true",
                 help="delete the workdir first instead of resuming")
  args = p.parse_args(argv)
  for name in ("image_size", "steps", "batch", "patch_size"):
    if getattr(args, name) <= 0:
      p.error(f"--{name.replace('_', '-')} must be positive, got "
              f"{getattr(args, name)}")
  if args.mesh is not None:
    parts = args.mesh.split(".")
    if len(parts) != 3 or not all(x.lstrip("-").isdigit() for x in parts):
      p.error(f"--mesh {args.mesh!r}: expected data.fsdp.tensor sizes, e.g. "
              "2.2.2 or -1.1.1")
  if args.image_size % args.patch_size:
    p.error(f"--image-size {args.image_size} is not a multiple of "
            f"--patch-size {args.patch_size}")
  return args


def _log(msg: str) -> None:
  print(f"[main_job {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _done(path: str) -> bool:
  return os.path.exists(os.path.join(path, "DONE"))


def _mark_done(path: str, info: dict | None = None) -> None:
  os.makedirs(path, exist_ok=True)
  tmp = os.path.join(path, "DONE.tmp")
  with open(tmp, "w") as f:
    json.dump(info or {}, f)
  os.replace(tmp, os.path.join(path, "DONE"))


class StageClock:
  """Seconds each stage took when it ran, kept across resumes.

  Stored in `report/stage_seconds.json`; a stage skipped on a rerun keeps
  the time of the run that did it, so the report's total is the job's cost,
  not the cost of the last (resuming) invocation.
  """

  def __init__(self, path: str):
    self.path = path
    self.seconds: dict[str, float] = {}
    try:
      with open(path) as f:
        self.seconds = {k: float(v) for k, v in json.load(f).items()}
    except FileNotFoundError:
      pass
    except (ValueError, AttributeError):  # unreadable: only timing is lost
      _log(f"ignoring unreadable {path}; stage times restart")

  @contextlib.contextmanager
  def stage(self, name: str, skip: bool):
    start = time.time()
    yield
    if not skip or name not in self.seconds:
      self.seconds[name] = round(time.time() - start, 1)
      tmp = self.path + ".tmp"
      with open(tmp, "w") as f:
        json.dump(self.seconds, f, indent=2)
      os.replace(tmp, self.path)

  @property
  def total(self) -> float:
    return sum(self.seconds.values())


# --- 1. dataset -------------------------------------------------------------


def build_dataset(args, data_dir: str, report_dir: str) -> str:
  """Synthesizes and prepares the dataset; returns its TFDS name."""
  import tensorflow_datasets as tfds

  import tfds_3dpain  # noqa: F401  (registers `3dpain`)

  name = f"3dpain/{args.dataset}"
  builder = tfds.builder(name, data_dir=data_dir)
  cfg = builder.builder_config
  if cfg.synth is None:
    raise cli_errors.UserError(f"--dataset {args.dataset}: {name} is not a "
                               "synthetic config; use demo, small or full")
  if not builder.is_prepared():
    _log(f"dataset: synthesizing {cfg.synth.num_identities} identities at "
         f"{cfg.synth.resolution}px into {data_dir}")
    builder.download_and_prepare(file_format="array_record")
  sheet = os.path.join(report_dir, "contact_sheet.png")
  if not os.path.exists(sheet):
    # Rendering next to an imported TensorFlow can crash the process
    # (tfds_3dpain renders in worker processes for the same reason), so the
    # sheet is drawn in a fresh spawned process.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
      pool.apply(_contact_sheet, (cfg.synth, sheet))
  return name


def _contact_sheet(synth_cfg, path: str, count: int = 6) -> None:
  from synth import contact_sheet, pipeline

  rows = [pipeline.generate_identity(synth_cfg, i)
          for i in range(min(count, synth_cfg.num_identities))]
  sheet = contact_sheet.make_contact_sheet(rows, 128)
  tmp = path + ".tmp.png"
  sheet.save(tmp)
  os.replace(tmp, path)


# --- 2-3. training ----------------------------------------------------------


def train_config(args, config_file: str, data_name: str, data_dir: str,
                 extra: str = ""):
  """A runlocal config of `configs/<config_file>.py` for this job's data."""
  import importlib.util

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = os.path.join(root, "configs", f"{config_file}.py")
  spec = importlib.util.spec_from_file_location(f"cfg_{config_file}", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  arg = (f"runlocal,data={data_name},data_dir={data_dir},"
         f"variant={args.variant},size={args.image_size},"
         f"steps={args.steps},batch={args.batch},seed={args.seed}")
  if args.mesh:
    arg += f",mesh={args.mesh}"
  cfg = mod.get_config(arg + ("," + extra if extra else ""))
  cfg.model.patch_size = args.patch_size
  cfg.eval_every = max(args.steps // 3, 1)
  cfg.checkpoint_every = cfg.eval_every
  cfg.log_every = max(args.steps // 30, 1)
  return cfg


def train(cfg, workdir: str) -> dict:
  from jaxpain import train as train_lib

  if _done(workdir):
    _log(f"train: {workdir} already finished")
    with open(os.path.join(workdir, "DONE")) as f:
      return json.load(f)
  result = train_lib.train_and_evaluate(cfg, workdir)
  result = {k: float(v) for k, v in dict(result).items()
            if isinstance(v, int | float)}
  _mark_done(workdir, result)
  return result


# --- 4-5. evaluation and report --------------------------------------------


def evaluate(run_dir: str, data_name: str, data_dir: str, out_dir: str):
  from jaxpain.eval import evaluate as eval_lib

  if _done(out_dir):
    with open(os.path.join(out_dir, "DONE")) as f:
      return json.load(f)
  res = eval_lib.evaluate(run_dir, data_name, "test", out_dir,
                          data_dir=data_dir, calibrate_split="train")
  metrics = {k: float(v) for k, v in res["metrics"].items()
             if isinstance(v, int | float)}
  _mark_done(out_dir, metrics)
  return metrics


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


def write_report(report_dir: str, results: dict, args, clock: StageClock,
                 teacher: dict | None = None):
  """Comparison table (Markdown + JSON) and combined loss curves."""
  keys = ("mae", "pearson", "auroc_1", "auroc_2", "auroc_3", "f1_macro",
          "mae_au_mean")
  lines = ["# jaxpain main job", "",
           f"Dataset 3dpain/{args.dataset}, model input {args.image_size}px, "
           f"ViTPain {args.variant} (patch {args.patch_size}), "
           f"{args.steps} steps per run, batch {args.batch}; "
           f"time {clock.total / 60:.1f} min ("
           + ", ".join(f"{k} {v:.0f} s" for k, v in clock.seconds.items())
           + ").", "",
           "Test identities (held out); PSPI in 0..16.", "",
           "| run | " + " | ".join(keys) + " |",
           "|---|" + "---|" * len(keys)]
  for name, m in results.items():
    cells = [f"{m[k]:.3f}" if m.get(k) == m.get(k) and k in m else "n/a"
             for k in keys]  # NaN (e.g. a single-class AUROC) -> n/a
    lines.append(f"| {name} ({STUDENTS[name][2]}) | " + " | ".join(cells)
                 + " |")
  if teacher:
    lines += ["", f"Heatmap teacher (trainer's test pass, checkpoint of step "
              f"{teacher['step']}, heatmap input): MAE {teacher['mae']:.3f}, "
              f"Pearson r {teacher['pearson']:.3f}."]
  lines += ["", "Per-run folders hold the scatter plot, ROC curves, per-AU "
            "errors and the worst predictions; `curves.png` the training "
            "curves; `contact_sheet.png` the data."]
  with open(os.path.join(report_dir, "summary.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(report_dir, "metrics.json"), "w") as f:
    json.dump({**results, **({"teacher": teacher} if teacher else {})},
              f, indent=2)
  _curves(report_dir, args)


# (split, metric) of metrics.jsonl rows drawn in curves.png, left and right.
CURVES = (("train", "loss"), ("val", "mae"))


def _curves(report_dir: str, args) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from jaxpain.train import metrics_writer

  fig, ax = plt.subplots(1, 2, figsize=(11, 4))
  runs = ["teacher", *STUDENTS]
  for name in runs:
    path = os.path.join(args.workdir, name, "metrics.jsonl")
    if not os.path.exists(path):
      continue
    rows = metrics_writer.read_jsonl(path)
    for a, (split, key) in zip(ax, CURVES, strict=True):
      pts = [(r["step"], r[key]) for r in rows
             if r.get("split") == split and key in r]
      if pts:
        a.plot(*zip(*pts, strict=True), label=name, marker=".")
  for a, key in zip(ax, ("train loss", "validation MAE (PSPI)"),
                    strict=True):
    a.set_title(key)
    a.set_xlabel("step")
    a.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(report_dir, "curves.png"), dpi=110)
  plt.close(fig)


def main(argv=None) -> int:
  """The main job; bad input: one line, exit status 2 (synth.cli_errors)."""
  args = parse_args(argv)
  return cli_errors.run(PROG, lambda: _main(args), verbose=args.verbose)


def _main(args) -> int:
  cli_errors.check_output_dir(args.workdir, "--workdir")
  if args.fresh and os.path.exists(args.workdir):
    shutil.rmtree(args.workdir)
  work = os.path.abspath(args.workdir)
  data_dir = os.path.join(work, "tfds")
  report_dir = os.path.join(work, "report")
  os.makedirs(report_dir, exist_ok=True)

  clock = StageClock(os.path.join(report_dir, "stage_seconds.json"))
  sheet_done = os.path.exists(os.path.join(report_dir, "contact_sheet.png"))
  with clock.stage("dataset", skip=sheet_done):
    data_name = build_dataset(args, data_dir, report_dir)
  _log(f"dataset ready: {data_name}")

  teacher_dir = os.path.join(work, "teacher")
  _log("training the heatmap teacher")
  with clock.stage("teacher", skip=_done(teacher_dir)):
    train(train_config(args, "teacher", data_name, data_dir), teacher_dir)

  results = {}
  for name, (cfg_file, extra, desc) in STUDENTS.items():
    if cfg_file == "student_distill":
      extra = f"teacher={teacher_dir}"
    _log(f"training {name}: {desc}")
    run_dir = os.path.join(work, name)
    with clock.stage(name, skip=_done(run_dir)):
      train(train_config(args, cfg_file, data_name, data_dir, extra),
            run_dir)
    _log(f"evaluating {name} on the test identities")
    eval_dir = os.path.join(report_dir, name)
    with clock.stage(f"eval {name}", skip=_done(eval_dir)):
      results[name] = evaluate(run_dir, data_name, data_dir, eval_dir)
  write_report(report_dir, results, args, clock,
               teacher_test_metrics(teacher_dir))
  _log(f"report: {os.path.join(report_dir, 'summary.md')}")
  print(open(os.path.join(report_dir, "summary.md")).read())
  return 0


if __name__ == "__main__":
  sys.exit(main())
