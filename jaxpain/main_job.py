"""The main job: 3DPain from scratch to an evaluated, distilled ViTPain.

  python -m jaxpain.main_job --workdir runs/main       # (scripts/main_job.sh)

Stages, in order, each resumable (a rerun skips the stages whose outputs
exist, so an interrupted job picks up where it stopped):

  1. dataset   synthesize a small 3DPain with the embedded MakeHuman head and
               build it as the TFDS dataset `3dpain/<config>` (ArrayRecord);
               a contact sheet of the identities goes to the report.
  2. teacher   ViTPain on pain-region heatmaps (configs/teacher.py).
  3. students  per seed: the RGB student with the neutral reference
               distilled from the frozen teacher (configs/student_distill.py),
               and two ablations trained the same way: without the teacher,
               and without the teacher and the neutral reference
               (configs/baseline.py).
  4. evaluate  each student on the held-out test identities (jaxpain.eval),
               plus a constant predictor (the train mean) as a floor.
  5. report    report.md (mean +- sd over seeds, targets met or not, time per
               stage), metrics.json, curves.png, per-run scatter/ROC plots,
               in `<workdir>/report/` (jaxpain.main_report).

The defaults use about 580 s of CPU, 12.5 min wall on the shared 2-core
development machine, an estimated 5-6.5 min on an idle one (`3dpain/main`:
600 identities, one frontal view, no background, stored at 32 px; a Ti/16
model with 8-px patches, trained from scratch, as there are no pretrained
weights offline; 3 seeds). `--dataset`, `--image-size`, `--variant`,
`--steps` and `--seeds` scale it. docs/training.md, "The main job", has the
measured figures and why the recipe is what it is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time

from jaxpain import main_report
from synth import cli_errors

# The trainer may use several simulated CPU devices for its mesh; nothing here
# needs more than one, and jax must not initialise before this is decided.
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow only writes the TFRecord twin here; its oneDNN banner is noise.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

PROG = "python -m jaxpain.main_job"
STEPS = 600  # train steps per run (defaults measured in docs/training.md)
WARMUP = 60
STUDENTS = {
    # name: (config file, extra config args, description); trained per seed
    "student_distill": ("student_distill", "", "RGB + neutral, distilled"),
    "student_no_teacher": ("baseline", "", "RGB + neutral, no teacher"),
    "student_no_neutral": ("baseline", "neutral=0",
                           "RGB only, no teacher, no neutral"),
}


def parse_args(argv=None) -> argparse.Namespace:
  p = cli_errors.ArgumentParser(prog=PROG,
                                description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", default="runs/main")
  p.add_argument("--dataset", default="main",
                 help="3dpain config: main (600 identities, 32 px, no "
                 "background), demo (36, 64 px), small (100, 256 px), full "
                 "(2,500, 256 px)")
  p.add_argument("--image-size", type=int, default=32,
                 help="model input size (images are resized to it)")
  p.add_argument("--variant", default="Ti/16")
  p.add_argument("--patch-size", type=int, default=8)
  p.add_argument("--steps", type=int, default=STEPS,
                 help="train steps per run")
  p.add_argument("--teacher-steps", type=int, default=None,
                 help="train steps of the teacher (default: --steps)")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
  p.add_argument("--warmup", type=int, default=WARMUP,
                 help="linear warmup steps before the cosine decay")
  p.add_argument("--seed", type=int, default=0, help="first seed")
  p.add_argument("--seeds", type=int, default=3,
                 help="seeds per student (seed, seed+1, ...); the report "
                 "gives mean and sd over them")
  p.add_argument("--students", nargs="+", choices=list(STUDENTS),
                 default=list(STUDENTS),
                 help="which students to train (default: all three)")
  p.add_argument("--mesh", default=None,
                 help="device mesh data.fsdp.tensor covering all devices, e.g. "
                 "2.2.2 (default: all devices on the data axis)")
  p.add_argument("--fresh", action="store_true",
                 help="delete the workdir first instead of resuming")
  args = p.parse_args(argv)
  if args.teacher_steps is None:
    args.teacher_steps = args.steps
  for name in ("image_size", "steps", "teacher_steps", "batch", "patch_size",
               "seeds"):
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


# Library warnings that say nothing to a user of this job: absl's "OpenCV
# is not installed" (TFDS image decoding falls back to PIL) and Orbax's
# notes that a checkpoint folder opened for reading is read only.
NOISE = ("OpenCV is not installed", "read only", "read_only=True")


class _DropNoise(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    return not any(n in record.getMessage() for n in NOISE)


def quiet_noise() -> None:
  """Installs the NOISE filter on the loggers and handlers that print it."""
  for logger in (logging.getLogger("absl"), logging.getLogger()):
    logger.addFilter(_DropNoise())
    for handler in logger.handlers:
      handler.addFilter(_DropNoise())


def use_compile_cache(path: str) -> None:
  """XLA's persistent compilation cache in the workdir (unless one is set).

  The seeds of a student, and the evaluations of every run of one model
  shape, compile the same programs; with the cache only the first compiles
  (an evaluation took about 35 s without, 10 s with, on the loaded
  development machine). It lives in the workdir so that `--fresh` times
  the job from nothing.
  """
  import jax

  if jax.config.jax_compilation_cache_dir:
    return
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


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
                               "synthetic config; use main, demo, small or "
                               "full")
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


def seeds(args) -> list[int]:
  return list(range(args.seed, args.seed + args.seeds))


def train_config(args, config_file: str, data_name: str, data_dir: str,
                 extra: str = "", seed: int | None = None):
  """A runlocal config of `configs/<config_file>.py` for this job's data.

  The recipe measured for training from scratch on `3dpain/main`: AdamW at
  --lr with --warmup linear steps and a cosine decay, weight decay 0.1,
  head dropout 0.1, no augmentation (600 identities are the regulariser).
  """
  import importlib.util

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = os.path.join(root, "configs", f"{config_file}.py")
  spec = importlib.util.spec_from_file_location(f"cfg_{config_file}", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  steps = args.teacher_steps if config_file == "teacher" else args.steps
  arg = (f"runlocal,data={data_name},data_dir={data_dir},"
         f"variant={args.variant},size={args.image_size},"
         f"patch={args.patch_size},steps={steps},batch={args.batch},"
         f"lr={args.lr},seed={args.seed if seed is None else seed}")
  if args.mesh:
    arg += f",mesh={args.mesh}"
  cfg = mod.get_config(arg + ("," + extra if extra else ""))
  cfg.optim.warmup_steps = min(args.warmup, steps // 2)
  cfg.model.head_dropout = 0.1
  cfg.augment.enabled = False
  cfg.eval_every = max(steps // 4, 1)
  cfg.checkpoint_every = steps  # evals keep the best; resume is per run
  cfg.log_every = max(steps // 30, 1)
  return cfg


def train(cfg, workdir: str, label: str) -> dict:
  from jaxpain import train as train_lib

  if _done(workdir):
    _log(f"train: {label} already finished")
    with open(os.path.join(workdir, "DONE")) as f:
      return json.load(f)
  cfg.progress_desc = label
  result = train_lib.train_and_evaluate(cfg, workdir)
  result = {k: float(v) for k, v in dict(result).items()
            if isinstance(v, int | float)}
  _mark_done(workdir, result)
  return result


# --- 4. evaluation ---------------------------------------------------------


def evaluate(run_dir: str, data_name: str, data_dir: str, out_dir: str):
  from jaxpain.eval import evaluate as eval_lib

  if _done(out_dir):
    with open(os.path.join(out_dir, "DONE")) as f:
      return json.load(f)
  res = eval_lib.evaluate(run_dir, data_name, "test", out_dir,
                          data_dir=data_dir, calibrate_split="validation")
  metrics = {k: float(v) for k, v in res["metrics"].items()
             if isinstance(v, int | float)}
  _mark_done(out_dir, metrics)
  return metrics


def constant_predictor(data_name: str, data_dir: str) -> dict:
  """The floor: every test image predicted as the train split's mean PSPI."""
  import numpy as np

  from jaxpain.data import sources

  def pspi(split):
    src = sources.open_source(data_name, split, data_dir)
    idx = sources.split_index(src, data_name, split, data_dir)
    rows = np.flatnonzero(idx.example)
    return np.array([float(src.fields(int(i), ("pspi",))["pspi"])
                     for i in rows])

  mean, test = float(pspi("train").mean()), pspi("test")
  err = test - mean
  return {"prediction": mean, "mae": float(np.abs(err).mean()),
          "rmse": float(np.sqrt((err ** 2).mean())), "count": len(test)}


def main(argv=None) -> int:
  """The main job; bad input: one line, exit status 2 (synth.cli_errors)."""
  args = parse_args(argv)
  return cli_errors.run(PROG, lambda: _main(args), verbose=args.verbose)


def _main(args) -> int:
  quiet_noise()
  cli_errors.check_output_dir(args.workdir, "--workdir")
  if args.fresh and os.path.exists(args.workdir):
    shutil.rmtree(args.workdir)
  work = os.path.abspath(args.workdir)
  data_dir = os.path.join(work, "tfds")
  report_dir = os.path.join(work, "report")
  os.makedirs(report_dir, exist_ok=True)

  use_compile_cache(os.path.join(work, "xla_cache"))
  clock = StageClock(os.path.join(report_dir, "stage_seconds.json"))
  sheet_done = os.path.exists(os.path.join(report_dir, "contact_sheet.png"))
  with clock.stage("dataset", skip=sheet_done):
    data_name = build_dataset(args, data_dir, report_dir)
  _log(f"dataset ready: {data_name}")

  teacher_dir = os.path.join(work, "teacher")
  _log("training the heatmap teacher")
  with clock.stage("teacher", skip=_done(teacher_dir)):
    train(train_config(args, "teacher", data_name, data_dir), teacher_dir,
          "teacher")

  for name in args.students:
    cfg_file, extra, desc = STUDENTS[name]
    if cfg_file == "student_distill":
      extra = f"teacher={teacher_dir}"
    _log(f"training {name} ({desc}), seeds {seeds(args)}")
    dirs = [os.path.join(work, name, f"seed{s}") for s in seeds(args)]
    with clock.stage(name, skip=all(map(_done, dirs))):
      for s, run_dir in zip(seeds(args), dirs, strict=True):
        train(train_config(args, cfg_file, data_name, data_dir, extra, s),
              run_dir, f"{name} seed {s}")

  _log("evaluating every student on the test identities")
  results = {name: {} for name in args.students}
  todo = [(n, s) for n in args.students for s in seeds(args)]
  eval_dirs = {k: os.path.join(report_dir, k[0], f"seed{k[1]}") for k in todo}
  with clock.stage("evaluate", skip=all(map(_done, eval_dirs.values()))):
    for name, s in _bar(todo, "evaluate"):
      results[name][s] = evaluate(os.path.join(work, name, f"seed{s}"),
                                  data_name, data_dir, eval_dirs[name, s])
    constant = constant_predictor(data_name, data_dir)
  path = main_report.write_report(
      report_dir, results, constant, main_report.teacher_test_metrics(teacher_dir),
      vars(args), clock.seconds)
  print(main_report.headline(report_dir))
  _log(f"report: {path}")
  return 0


def _bar(items, desc: str):
  from tqdm.auto import tqdm

  return tqdm(items, desc=desc, dynamic_ncols=True)


if __name__ == "__main__":
  sys.exit(main())
