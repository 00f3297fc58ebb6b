"""The commands of `python -m jaxpain.temporal` (see jaxpain.temporal.cli)
and its argument parser.

They live apart from the entry point so that the end-to-end job
(jaxpain.temporal.job) can call them without importing the CLI that
dispatches to it: imports point one way (cli -> job -> commands).
"""

from __future__ import annotations

import argparse
import csv
import os

import numpy as np

from synth import sequences as sq

DESCRIPTION = ("PainDiffusion in AU space: simulate, train, sample, "
               "evaluate, job; released: the authors' FLAME model")
# First subject id of a tuning split (`simulate --tune`): far above any
# train/val/test id, so tuning subjects are never trained or tested on.
TUNE_FIRST_ID = 1000


class UsageError(ValueError):
  """Bad command-line input: one line, status 2."""


def load_config(spec: str):
  """'configs/temporal.py:small,seed=1' -> the config (the trainer's
  loader, `jaxpain.train.config.load_config_file`, with this CLI's hint)."""
  from jaxpain.train.config import load_config_file

  path = spec.partition(":")[0]
  if not os.path.isfile(path):
    raise UsageError(f"config file {path} not found (e.g. "
                     "configs/temporal.py:small)")
  try:
    return load_config_file(spec)
  except ValueError as e:
    raise UsageError(f"config {spec}: {e}") from None


# ------------------------------------------------------------ commands ----


def cmd_simulate(a) -> dict:
  from jaxpain.temporal import data

  c = load_config(a.config).simulate
  seed = c.seed if a.seed is None else a.seed
  if a.tune:
    # Held-out subjects for choosing sampler settings, so that the test
    # split is scored once, with settings chosen elsewhere.
    first = TUNE_FIRST_ID
    if first < c.train + c.val + c.test:
      raise UsageError(f"tuning ids from {first} would overlap the "
                       f"{c.train + c.val + c.test} training/val/test ids")
    return {"tune": data.simulate_split(
        os.path.join(a.out, "tune"), seed, range(first, first + a.tune),
        c.programmes, c.test_duration_s, progress=True)}
  counts = {"train": a.train or c.train, "val": c.val if a.val is None
            else a.val, "test": a.test or c.test}
  return data.simulate_splits(
      a.out, seed, counts, c.programmes,
      a.duration or c.duration_s, c.test_duration_s, progress=True)


def cmd_train(a) -> dict:
  from jaxpain.temporal import train

  config = load_config(a.config)
  if a.data:
    config.data.dir = a.data
  if not os.path.isdir(os.path.join(config.data.dir, "train")):
    raise UsageError(f"no simulated data in {config.data.dir}; run "
                     "`python -m jaxpain.temporal simulate --out DIR` and "
                     "pass --data DIR")
  return train.train(config, a.workdir)


def _stimulus(a, subject):
  if bool(a.stimulus) == bool(a.programme):
    raise UsageError("give exactly one of --stimulus CSV or --programme "
                     f"NAME ({', '.join(sq.PROGRAMMES)})")
  if a.stimulus:
    return sq.stimulus_from_csv(a.stimulus, a.column, a.unit)
  if a.programme not in sq.PROGRAMMES:
    raise UsageError(f"unknown programme {a.programme!r}; choose one of "
                     f"{sq.PROGRAMMES}")
  return sq.stimulus(a.programme, a.duration, a.seed, subject)


def _emotion(text: str | None, default: int) -> int:
  if text is None:
    return default
  if text.isdigit() and int(text) < len(sq.EMOTIONS):
    return int(text)
  names = {e.lower(): i for i, e in enumerate(sq.EMOTIONS)}
  if text.lower() not in names:
    raise UsageError(f"unknown emotion {text!r}; one of {sq.EMOTIONS}")
  return names[text.lower()]


def parse_guidance(text: str) -> tuple[float, float, float]:
  """'w_emo,w_expr,w_stim' -> three floats (--guidance of sample and
  evaluate)."""
  try:
    w = tuple(float(x) for x in text.split(","))
  except ValueError:
    w = ()
  if len(w) != 3:
    raise UsageError(f"--guidance takes three weights: emotion,"
                     f"expressiveness,stimulus; got {text!r}")
  return w


def cmd_sample(a) -> dict:
  from jaxpain.temporal import sampler, train

  if not a.out.endswith(".csv"):
    raise UsageError(f"--out must name a .csv file, got {a.out}")
  subject = sq.sample_subject(a.seed, a.subject)
  stim = _stimulus(a, subject)
  expr = subject.expressiveness if a.expressiveness is None else float(
      a.expressiveness)
  emo = _emotion(a.emotion, subject.emotion)
  net, scfg, info = train.load_model(a.workdir)
  if a.guidance is not None:
    scfg = sampler.SamplerConfig.from_dict(
        {**scfg.__dict__, "guidance": parse_guidance(a.guidance)})
  n = a.streams
  au = sampler.rollout(net, scfg, np.repeat(stim.drive[None], n, 0),
                       np.full(n, expr), np.full(n, emo), seed=a.seed,
                       progress=True)
  write_csv(a.out, au, stim.drive)
  out = {"csv": a.out, "frames": int(au.shape[1]), "streams": n,
         "expressiveness": expr, "emotion": sq.EMOTIONS[emo],
         "model_step": info["step"]}
  if a.render:
    out["frames_dir"] = render(au[0], a.render, a.subject, a.size)
  return out


def write_csv(path: str, au: np.ndarray, stimulus: np.ndarray) -> None:
  """(S, T, K) AU streams -> CSV rows (stream, frame, time, stimulus,
  AUs..., pspi); written to a temporary name, then renamed."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  pspi = sq.pspi(au)
  with open(tmp, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["stream", "frame", "time", "stimulus", *sq.SEQ_AUS, "pspi"])
    for s in range(au.shape[0]):
      for t in range(au.shape[1]):
        w.writerow([s, t, f"{t / sq.FPS:.2f}", f"{stimulus[t]:.4f}",
                    *(f"{v:.4f}" for v in au[s, t]), f"{pspi[s, t]:.4f}"])
  os.replace(tmp, path)


def render(au: np.ndarray, out_dir: str, identity: int, size: int) -> str:
  """Frames of one AU stream on the synth head (synth.sequences.clips)."""
  try:
    from synth.sequences import clips
  except ImportError as e:
    raise UsageError(f"--render needs synth.sequences.clips ({e}); it is "
                     "not in this checkout") from None
  from PIL import Image

  frames = clips.render_clip(au, identity=identity, view=0, size=size)
  os.makedirs(out_dir, exist_ok=True)
  for t, img in enumerate(np.asarray(frames)):
    Image.fromarray(img).save(os.path.join(out_dir, f"frame_{t:05d}.png"))
  return out_dir


def cmd_evaluate(a) -> dict:
  from jaxpain.temporal import evaluate

  dirs = {"diffusion forcing": a.workdir}
  if a.full:
    dirs["full-sequence"] = a.full
  knobs = {}
  if a.context_sigma is not None:
    if not a.context_sigma >= 0:
      raise UsageError(f"--context_sigma must be >= 0, got {a.context_sigma}")
    knobs["context_sigma"] = a.context_sigma
  if a.guidance is not None:
    knobs["guidance"] = parse_guidance(a.guidance)
  res = evaluate.run(dirs, a.data, a.samples, a.length, a.per_recording,
                     a.seed, progress=True, split=a.split,
                     sampler_overrides=knobs)
  summary = evaluate.save(res, a.out)
  return {"out": a.out, "metrics": summary["metrics"]}


def cmd_released(a) -> dict:
  """FLAME frames from the authors' released weights (docs/temporal.md,
  "Importing the released PainDiffusion weights")."""
  from jaxpain.temporal.released import load_released, stream

  if not a.out.endswith(".npz"):
    raise UsageError(f"--out must name a .npz file, got {a.out}")
  stim = _stimulus(a, sq.sample_subject(a.seed, 0))
  if stim.unit != "°C":
    raise UsageError(f"the released model was trained on temperatures; "
                     f"give the stimulus in °C, not {stim.unit}")
  model, info = load_released(a.weights)
  cfg = info["config"]
  expr = (cfg.expressiveness_stats[0] if a.expressiveness is None
          else a.expressiveness)
  emo = cfg.emotion_stats[0] if a.emotion is None else a.emotion
  knobs = {} if a.guidance is None else {"guidance": parse_guidance(
      a.guidance)}
  scfg = stream.sampler_config(model, **knobs)
  n = a.streams
  flame = stream.rollout(model, scfg, np.repeat(stim.values[None], n, 0),
                         np.full(n, expr), np.full(n, emo), seed=a.seed)
  os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
  tmp = f"{a.out}.tmp{os.getpid()}.npz"
  np.savez(tmp, jaw=flame[..., :stream.JAW],
           expression=flame[..., stream.JAW:], stimulus_c=stim.values,
           fps=sq.FPS)
  os.replace(tmp, a.out)
  return {"npz": a.out, "frames": int(flame.shape[1]), "streams": n,
          "expressiveness": float(expr), "emotion": float(emo),
          "params": info["params"], "ignored_keys": len(info["ignored"])}


# -------------------------------------------------------------- parser ----


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m jaxpain.temporal",
                              description=DESCRIPTION)
  sub = p.add_subparsers(dest="command", required=True)
  s = sub.add_parser("simulate", help="simulated recordings")
  s.add_argument("--config", default="configs/temporal.py")
  s.add_argument("--out", required=True)
  s.add_argument("--seed", type=int, default=None)
  s.add_argument("--train", type=int, default=None, help="subjects")
  s.add_argument("--val", type=int, default=None)
  s.add_argument("--test", type=int, default=None)
  s.add_argument("--duration", type=float, default=None,
                 help="seconds per training recording")
  s.add_argument("--tune", type=int, default=0,
                 help=f"write ONLY a tuning split of this many subjects "
                 f"(ids from {TUNE_FIRST_ID}) beside the existing splits")
  s = sub.add_parser("train", help="train or resume")
  s.add_argument("--config", default="configs/temporal.py")
  s.add_argument("--workdir", required=True)
  s.add_argument("--data", default=None)
  s = sub.add_parser("sample", help="AU(t)/PSPI(t) for a stimulus")
  s.add_argument("--workdir", required=True)
  s.add_argument("--stimulus", default=None, help="CSV file")
  s.add_argument("--column", default=None)
  s.add_argument("--unit", default="drive", choices=sorted(sq.UNIT_RANGES))
  s.add_argument("--programme", default=None, choices=None)
  s.add_argument("--duration", type=float, default=60.0)
  s.add_argument("--subject", type=int, default=0,
                 help="calibration, default traits and render identity")
  s.add_argument("--expressiveness", type=float, default=None)
  s.add_argument("--emotion", default=None)
  s.add_argument("--guidance", default=None, help="w_emo,w_expr,w_stim")
  s.add_argument("--streams", type=int, default=1)
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--out", required=True, help="AU CSV")
  s.add_argument("--render", default=None, help="frames folder")
  s.add_argument("--size", type=int, default=128)
  s = sub.add_parser("evaluate", help="metrics vs baselines")
  s.add_argument("--workdir", required=True)
  s.add_argument("--full", default=None, help="full-sequence run")
  s.add_argument("--data", required=True)
  s.add_argument("--out", required=True)
  s.add_argument("--samples", type=int, default=3)
  s.add_argument("--length", type=int, default=400)
  s.add_argument("--per_recording", type=int, default=1)
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--split", default="test", help="test | tune | val")
  s.add_argument("--context_sigma", type=float, default=None,
                 help="override the trained runs' sampler setting")
  s.add_argument("--guidance", default=None,
                 help="w_emo,w_expr,w_stim for every model scored")
  s = sub.add_parser("released", help="FLAME frames from the released "
                     "PainDiffusion weights")
  s.add_argument("--weights", required=True,
                 help="the release's model.safetensors (a torch pickle)")
  s.add_argument("--stimulus", default=None, help="CSV file")
  s.add_argument("--column", default=None)
  s.add_argument("--unit", default="°C", choices=sorted(sq.UNIT_RANGES))
  s.add_argument("--programme", default=None)
  s.add_argument("--duration", type=float, default=60.0)
  s.add_argument("--expressiveness", type=float, default=None,
                 help="raw; default: the training mean")
  s.add_argument("--emotion", type=float, default=None,
                 help="raw value; default: the training mean")
  s.add_argument("--guidance", default=None, help="w_emo,w_expr,w_stim")
  s.add_argument("--streams", type=int, default=1)
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--out", required=True, help="FLAME .npz")
  s = sub.add_parser("job", help="simulate -> ... -> render, >= 3 seeds")
  s.add_argument("--out", default="runs/temporal_job")
  s.add_argument("--seeds", default="0,1,2")
  s.add_argument("--config", default="configs/temporal.py:small")
  s.add_argument("--full_config", default="configs/temporal_fullseq.py:small")
  return p
