"""Held-out evaluation: trained models and baselines on the same segments.

Protocol (reference.md §G.5, in AU space): from every recording of the
test split (simulated subjects never seen in training) cut `per_recording`
segments of T frames; each method gets the segment's stimulus, the
subject's expressiveness and emotion and the first C * fs ground-truth
frames as context (as the original evaluates from ground-truth context),
and produces S samples. Metrics (metrics.py) cover the frames after the
context only. Models run as S x N independent streams batched into one
rollout.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

import numpy as np

from jaxpain.temporal import baselines, metrics, sampler
from jaxpain.temporal import data as data_lib
from jaxpain.temporal import train as train_lib
from synth import sequences as sq

# A reference row, not a baseline: the simulator itself with new noise.
CEILING = "simulator, new noise"


def segments(recs: data_lib.Recordings, length: int, per_recording: int = 1
             ) -> dict[str, np.ndarray]:
  """N = recordings x per_recording segments of `length` frames."""
  if recs.frames < length * per_recording:
    raise data_lib.DataError(
        f"test recordings have {recs.frames} frames, fewer than "
        f"{per_recording} segments of {length}; simulate longer test "
        "recordings or shorten the segments")
  rows, starts = np.meshgrid(np.arange(recs.num),
                             np.arange(per_recording) * length,
                             indexing="ij")
  rows, starts = rows.ravel(), starts.ravel()
  span = starts[:, None] + np.arange(length)[None]
  return {"au": np.asarray(recs.au, np.float32)[rows[:, None], span],
          "stim": np.asarray(recs.stimulus, np.float32)[rows[:, None], span],
          "expr": np.asarray(recs.expressiveness, np.float32)[rows],
          "emotion": np.asarray(recs.emotion, np.int32)[rows],
          "subject_id": np.asarray(recs.subject_id)[rows]}


def resimulate(recs: data_lib.Recordings, length: int, per_recording: int,
               samples: int, seed: int = 1000) -> np.ndarray:
  """(S, N, T, K): the SAME test subjects under the same stimulus with new
  noise, blinks and gain modulation (noise seeds seed, seed + 1, ...).

  The ceiling of the metrics: what a perfect model of each subject would
  score against a ground truth that carries its own noise.
  """
  meta = recs.meta
  progs = meta["programmes"]
  out = []
  for s in range(samples):
    au = []
    for i, sid in enumerate(meta["subject_ids"]):
      subject = sq.sample_subject(meta["seed"], sid)
      stim = sq.stimulus(progs[i % len(progs)], meta["duration_s"],
                         meta["seed"], subject)
      au.append(sq.simulate(subject, stim, seed + s).au)
    again = dataclasses.replace(recs, au=np.stack(au))
    out.append(segments(again, length, per_recording)["au"])
  return np.stack(out)


def generate(net, scfg: sampler.SamplerConfig, seg: Mapping, samples: int,
             context_frames: int, seed: int = 0, progress: bool = False
             ) -> np.ndarray:
  """(S, N, T, K): S samples of every segment, all streams in one batch."""
  n = seg["stim"].shape[0]
  rep = lambda x: np.concatenate([np.asarray(x)] * samples)
  out = sampler.rollout(
      net, scfg, rep(seg["stim"]), rep(seg["expr"]), rep(seg["emotion"]),
      seed=seed, context_frames=rep(seg["au"][:, :context_frames]),
      progress=progress)
  return out.reshape(samples, n, *out.shape[1:])


def score(gen: np.ndarray, seg: Mapping, context_frames: int
          ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """(metrics, per-segment scores (N,) for `paired`) after the context."""
  c = context_frames
  gen, gt = gen[:, :, c:], seg["au"][:, c:]
  per_sample = metrics.sample_scores(gen, gt)
  per_segment = {m: v.mean(0) for m, v in per_sample.items()}
  return (metrics.compute(gen, gt, seg["stim"][:, c:], per_sample),
          per_segment)


def run(model_dirs: Mapping[str, str], data_dir: str, samples: int = 3,
        length: int = 400, per_recording: int = 1, seed: int = 0,
        progress: bool = False, split: str = "test",
        sampler_overrides: Mapping | None = None) -> dict:
  """Scores every model in `model_dirs` and the baselines.

  Args:
    model_dirs: {method name: training workdir}.
    data_dir: the recordings root (train/ for baselines, test/ to score).
    samples: S per segment.
    length: T frames per segment (the original: 640, scored on 608).
    per_recording: segments per test recording.
    seed: sampling seed.
    split: the recordings scored: 'test', or 'tune' (`simulate --tune`)
      where sampler settings are chosen.
    sampler_overrides: SamplerConfig fields replacing every model's
      trained settings (e.g. {'context_sigma': 0.1}).

  Returns:
    {'metrics': {method: {metric: value}}, 'per_segment': {method:
    {metric: (N,) scores}} (`paired`), 'reference': ground truth's own
    values, 'generated': {method: (S, N, T, K)}, 'segments': ...,
    'context_frames': C * fs}.
  """
  train = data_lib.load_split(os.path.join(data_dir, "train"))
  test = data_lib.load_split(os.path.join(data_dir, split))
  seg = segments(test, length, per_recording)
  gens, ctx = {}, None
  for name, wd in model_dirs.items():
    net, scfg, _ = train_lib.load_model(wd)
    scfg = dataclasses.replace(scfg, **dict(sampler_overrides or {}))
    c = scfg.context * net.cfg.frames_per_token
    if ctx is not None and c != ctx:
      raise ValueError(f"{name}: context of {c} frames, others {ctx}")
    ctx = c
    gens[name] = generate(net, scfg, seg, samples, c, seed, progress)
  ctx = 16 if ctx is None else ctx
  for name, fn in baselines.BASELINES.items():
    g = (fn(train, seg["stim"], samples, seed=seed) if name == "random"
         else fn(train, seg["stim"], samples))
    g[:, :, :ctx] = seg["au"][None, :, :ctx]  # same GT context for all
    gens[name] = g
  ceiling = resimulate(test, length, per_recording, samples)
  ceiling[:, :, :ctx] = seg["au"][None, :, :ctx]
  gens[CEILING] = ceiling
  scored = {name: score(g, seg, ctx) for name, g in gens.items()}
  ref = metrics.reference(seg["au"][:, ctx:], seg["stim"][:, ctx:])
  return {"metrics": {k: v[0] for k, v in scored.items()},
          "per_segment": {k: v[1] for k, v in scored.items()},
          "reference": ref, "generated": gens, "segments": seg,
          "context_frames": ctx}


def save(result: Mapping, out_dir: str, plot_rows: int = 2) -> dict:
  """metrics.json and plots (PNG) of `run`'s result into `out_dir`."""
  from jaxpain.temporal import report

  os.makedirs(out_dir, exist_ok=True)
  summary = {"metrics": result["metrics"], "reference": result["reference"],
             "context_frames": result["context_frames"],
             "segments": int(result["segments"]["stim"].shape[0])}
  with open(os.path.join(out_dir, "metrics.json"), "w") as f:
    json.dump(summary, f, indent=2)
  pngs = report.plot_segments(result, out_dir, rows=plot_rows)
  summary["plots"] = pngs
  return summary


def pspi(au: np.ndarray) -> np.ndarray:
  return sq.pspi(np.asarray(au, np.float32))
