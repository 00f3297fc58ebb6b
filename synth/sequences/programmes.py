"""Stimulus programmes: what the simulated subject is exposed to, per frame.

A `Stimulus` carries the curve in its physical unit (`values`: °C for the
heat programmes, degrees for a joint angle) and the same curve on the
normalised **drive** axis the response model and the sequence model read
(`drive`, 0..1): 0 is the programme's no-pain baseline, 1 its maximum.
Each unit has a fixed range (UNIT_RANGES): °C maps 32 -> 0 and 50.5 -> 1
(BioVid's thermode baseline and cap), a joint angle 0° -> 0 and 150° -> 1
(the PainDiffusion robot demo's elbow range). A subject's threshold and
tolerance live on the same axis, so one subject responds to a heat ramp
and to a joint curve alike.

Programmes (`stimulus(name, duration_s, seed, subject)`):
- "biovid": BioVid Heat Pain Part A/C's protocol: a 32 °C baseline, then
  trials of a ramp (RAMP_C_PER_S) to a 4 s plateau at one of four levels,
  a ramp back down and an 8-12 s pause; the levels are calibrated on the
  subject (level 1 = threshold, level 4 = tolerance, 2 and 3 evenly
  between) and come in random order, REPEATS of each per block.
- "step": baseline, then a jump to the subject's tolerance, held.
- "joint": a robot joint angle: holds and smooth moves between random
  angles, RC-filtered like a potentiometer.
- `stimulus_from_csv` / `stimulus_from_array`: any curve in a known unit.
"""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np

from synth.sequences import aus
from synth.sequences import subject as subject_lib

PROGRAMMES = ("biovid", "step", "joint")
PROGRAMME_UNITS = {"biovid": "°C", "step": "°C", "joint": "deg"}
UNIT_RANGES: dict[str, tuple[float, float]] = {
    "°C": (subject_lib.BASELINE_C, subject_lib.MAX_C),
    "deg": (0.0, 150.0),
    "drive": (0.0, 1.0),
}
NUM_LEVELS = 4
REPEATS = 20
PLATEAU_S = 4.0
PAUSE_S = (8.0, 12.0)
RAMP_C_PER_S = 4.0
LEAD_IN_S = (4.0, 8.0)
STEP_ONSET_S = 2.0
JOINT_HOLD_S, JOINT_MOVE_S, JOINT_RC_S = (1.0, 5.0), (0.5, 2.0), 0.1
# Subject-free calibration (`subject=None`): a median subject.
DEFAULT_THRESHOLD_C, DEFAULT_TOLERANCE_C = 42.0, 46.5
# Values may stray this fraction of the unit's span outside its range.
_RANGE_SLACK = 0.05


@dataclasses.dataclass(frozen=True)
class Stimulus:
  """One stimulus curve at aus.FPS.

  Attributes:
    name: the programme ("biovid", "step", "joint", "csv", "array").
    values: (T,) float32 in `unit`.
    drive: (T,) float32 in [0, 1], `values` on the normalised axis.
    unit: a key of UNIT_RANGES.
    level: (T,) int8: the BioVid level (1..4) during a plateau or a step,
      0 elsewhere and for free curves.
  """

  name: str
  values: np.ndarray
  drive: np.ndarray
  unit: str
  level: np.ndarray

  @property
  def num_frames(self) -> int:
    return int(self.values.shape[0])

  @property
  def duration_s(self) -> float:
    return self.num_frames / aus.FPS


def _frames(duration_s: float) -> int:
  if not (isinstance(duration_s, int | float) and duration_s > 0):
    raise ValueError(f"duration_s must be a positive number of seconds, "
                     f"got {duration_s!r}")
  return max(1, int(round(duration_s * aus.FPS)))


def _make(name, values, unit, level=None) -> Stimulus:
  lo, hi = UNIT_RANGES[unit]
  values = np.asarray(values, np.float32)
  drive = np.clip((values - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
  if level is None:
    level = np.zeros(values.shape, np.int8)
  return Stimulus(name, values, drive, unit, np.asarray(level, np.int8))


def _calibration(subject) -> tuple[float, float]:
  if subject is None:
    return DEFAULT_THRESHOLD_C, DEFAULT_TOLERANCE_C
  return subject.threshold_c, subject.tolerance_c


def level_temperatures(subject=None) -> np.ndarray:
  """(NUM_LEVELS,) °C of BioVid's levels 1..4 for `subject`."""
  lo, hi = _calibration(subject)
  return np.linspace(lo, hi, NUM_LEVELS)


def biovid(duration_s: float, rng: np.random.Generator, subject=None
           ) -> Stimulus:
  """The BioVid heat protocol (module docstring), cut to `duration_s`."""
  n = _frames(duration_s)
  temps = level_temperatures(subject)
  base = subject_lib.BASELINE_C
  knots_t, knots_c = [0.0], [base]
  plateaus = []
  t = rng.uniform(*LEAD_IN_S)
  while t < n / aus.FPS:
    for lvl in rng.permutation(np.repeat(np.arange(1, NUM_LEVELS + 1),
                                         REPEATS)):
      ramp = (temps[lvl - 1] - base) / RAMP_C_PER_S
      start, end = t + ramp, t + ramp + PLATEAU_S
      knots_t += [t, start, end, end + ramp]
      knots_c += [base, temps[lvl - 1], temps[lvl - 1], base]
      plateaus.append((start, end, lvl))
      t = end + ramp + rng.uniform(*PAUSE_S)
      if t >= n / aus.FPS:
        break
  times = np.arange(n) / aus.FPS
  values = np.interp(times, knots_t, knots_c)
  level = np.zeros(n, np.int8)
  for start, end, lvl in plateaus:
    level[(times >= start) & (times < end)] = lvl
  return _make("biovid", values, "°C", level)


def step(duration_s: float, rng: np.random.Generator, subject=None
         ) -> Stimulus:
  """Baseline until min(STEP_ONSET_S, duration / 4), then the tolerance."""
  del rng  # Deterministic given the subject.
  n = _frames(duration_s)
  onset = int(round(min(STEP_ONSET_S, duration_s / 4) * aus.FPS))
  values = np.full(n, subject_lib.BASELINE_C)
  values[onset:] = _calibration(subject)[1]
  level = np.where(np.arange(n) >= onset, NUM_LEVELS, 0)
  return _make("step", values, "°C", level)


def joint(duration_s: float, rng: np.random.Generator, subject=None
          ) -> Stimulus:
  """A joint angle in degrees: random holds and cosine moves, RC-filtered."""
  del subject  # A free curve: the subject does not calibrate it.
  n = _frames(duration_s)
  lo, hi = UNIT_RANGES["deg"]
  t, angle = 0.0, rng.uniform(lo, hi * 0.3)
  knots_t, knots_a = [0.0], [angle]
  while t < n / aus.FPS:
    t += rng.uniform(*JOINT_HOLD_S)
    knots_t.append(t)
    knots_a.append(angle)
    angle = rng.uniform(lo, hi)
    t += rng.uniform(*JOINT_MOVE_S)
    knots_t.append(t)
    knots_a.append(angle)
  times = np.arange(n) / aus.FPS
  seg = np.clip(np.searchsorted(knots_t, times, side="right") - 1, 0,
                len(knots_t) - 2)
  t0, t1 = np.asarray(knots_t)[seg], np.asarray(knots_t)[seg + 1]
  a0, a1 = np.asarray(knots_a)[seg], np.asarray(knots_a)[seg + 1]
  frac = np.clip((times - t0) / np.maximum(t1 - t0, 1e-9), 0.0, 1.0)
  smooth = a0 + (a1 - a0) * (1 - np.cos(np.pi * frac)) / 2
  return _make("joint", _rc_filter(smooth, JOINT_RC_S), "deg")


def _rc_filter(x: np.ndarray, tau_s: float) -> np.ndarray:
  from scipy import signal

  a = np.exp(-1.0 / (tau_s * aus.FPS))
  y, _ = signal.lfilter([1 - a], [1, -a], x, zi=[a * x[0]])
  return y


_PROGRAMME_FNS = {"biovid": biovid, "step": step, "joint": joint}


def stimulus(name: str, duration_s: float, seed: int, subject=None
             ) -> Stimulus:
  """A named programme for `subject`, deterministic per (seed, subject).

  Args:
    name: one of PROGRAMMES.
    duration_s: length in seconds (frames = round(duration_s * FPS)).
    seed: master seed (the same as the subject's, usually).
    subject: the Subject whose threshold and tolerance calibrate the heat
      levels; None uses a median calibration (DEFAULT_*_C).

  Returns:
    The Stimulus.
  """
  if name not in _PROGRAMME_FNS:
    raise ValueError(f"unknown stimulus programme {name!r}; choose one of "
                     f"{PROGRAMMES} or read a curve with stimulus_from_csv")
  sid = 0 if subject is None else subject.subject_id
  rng = subject_lib.rng_for(seed, subject_lib.STIMULUS_STREAM, sid)
  return _PROGRAMME_FNS[name](duration_s, rng, subject)


def stimulus_from_array(values, unit: str = "drive", fps: float = aus.FPS,
                        name: str = "array") -> Stimulus:
  """A stimulus from samples in `unit`, resampled to aus.FPS.

  Args:
    values: (N,) samples.
    unit: a key of UNIT_RANGES.
    fps: the samples' rate (linear interpolation to aus.FPS).
    name: recorded as the Stimulus name.

  Raises:
    ValueError: unknown unit, empty or non-finite values, or values well
      outside the unit's range (a wrong unit, most likely).
  """
  if unit not in UNIT_RANGES:
    raise ValueError(f"unknown stimulus unit {unit!r}; choose one of "
                     f"{sorted(UNIT_RANGES)}")
  values = np.asarray(values, np.float64).ravel()
  if values.size == 0 or not np.all(np.isfinite(values)):
    raise ValueError("stimulus values must be a non-empty series of finite "
                     "numbers")
  lo, hi = UNIT_RANGES[unit]
  slack = _RANGE_SLACK * (hi - lo)
  if values.min() < lo - slack or values.max() > hi + slack:
    raise ValueError(
        f"stimulus values span [{values.min():.3g}, {values.max():.3g}], "
        f"outside the {unit} range [{lo}, {hi}]; pass the unit the values "
        f"are in (one of {sorted(UNIT_RANGES)})")
  if fps != aus.FPS:
    times = np.arange(values.size) / fps
    out = np.arange(int(np.floor(times[-1] * aus.FPS)) + 1) / aus.FPS
    values = np.interp(out, times, values)
  return _make(name, values, unit)


def stimulus_from_csv(path: str | os.PathLike, column: str | None = None,
                      unit: str = "drive", time_column: str = "time"
                      ) -> Stimulus:
  """A stimulus from a CSV file with a header row.

  Args:
    path: the CSV file.
    column: the value column; default: the first column that is not
      `time_column`.
    unit: the values' unit, a key of UNIT_RANGES.
    time_column: seconds per row; when present the curve is resampled to
      aus.FPS, otherwise rows are frames at aus.FPS.

  Raises:
    ValueError: one line naming the file and what is wrong with it.
  """
  try:
    with open(path, newline="") as f:
      rows = list(csv.DictReader(f))
  except OSError as e:
    raise ValueError(f"cannot read stimulus CSV {path}: {e.strerror}"
                     ) from None
  header = list(rows[0]) if rows else []
  candidates = [h for h in header if h != time_column]
  column = column or (candidates[0] if candidates else None)
  if column is None or column not in header:
    raise ValueError(f"stimulus CSV {path} has no column {column!r} (header:"
                     f" {header}); pass column= one of them")
  try:
    values = np.array([float(r[column]) for r in rows])
    times = (np.array([float(r[time_column]) for r in rows])
             if time_column in header else None)
  except (TypeError, ValueError):
    raise ValueError(f"stimulus CSV {path}: column {column!r} or "
                     f"{time_column!r} holds a non-number") from None
  if times is not None:
    if values.size < 2 or np.any(np.diff(times) <= 0):
      raise ValueError(f"stimulus CSV {path}: {time_column!r} must increase "
                       f"strictly over at least two rows")
    out = np.arange(times[0], times[-1] + 1e-9, 1.0 / aus.FPS)
    values = np.interp(out, times, values)
  try:
    return stimulus_from_array(values, unit, name="csv")
  except ValueError as e:
    raise ValueError(f"stimulus CSV {path}: {e}") from None
