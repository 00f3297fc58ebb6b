"""Simulated subjects: who feels how much, how fast, and shows it how.

A `Subject` holds every per-person parameter of the stimulus -> AU response
model (reference.md §G.6): pain threshold and tolerance, a heavy-tailed
expressiveness gain (a quarter of subjects barely move, as in BioVid),
latency, rise and decay time constants, AU mixture weights around the
Prkachin-Solomon core with Dirichlet variation and occasional mouth and brow
AUs, blinks, baseline noise and an emotion that shifts the resting face.

`sample_subject(seed, subject_id)` draws all of it from
`SeedSequence([seed, SUBJECT_STREAM, subject_id])`: a subject depends on
nothing else, so any subject can be made alone, in any process.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from synth.sequences import aus

# SeedSequence stream words (the second entropy word of every generator).
SUBJECT_STREAM, STIMULUS_STREAM, NOISE_STREAM, CLIP_STREAM = 11, 12, 13, 14

# BioVid's thermode range: baseline 32 °C, never above 50.5 °C.
BASELINE_C, MAX_C = 32.0, 50.5
# AU intensity of a full response (y = 1) at gain 1 and mixture weight 1.
PEAK_INTENSITY = 4.0
# A quarter of subjects are near-zero responders (gain ~ 0.03).
STOIC_FRACTION = 0.25
_STOIC_GAIN, _STOIC_SPREAD = 0.03, 0.6
_RESPONDER_GAIN, _RESPONDER_SPREAD = 0.35, 0.9
# Graded pain AUs sharing the Dirichlet mixture (AU43 is drawn apart).
_CORE = ("AU4", "AU6", "AU7", "AU9", "AU10")
_CORE_CONCENTRATION = 2.0
# Occasional AUs with pain: probability a subject shows it, weight range.
_OCCASIONAL = {
    "AU1": 0.10, "AU2": 0.08, "AU12": 0.30, "AU20": 0.25, "AU25": 0.35,
    "AU26": 0.20, "AU27": 0.08,
}
_OCCASIONAL_WEIGHT = (0.2, 0.8)
# Resting-face AU offsets per emotion (EMOTIONS order), scaled per subject.
EMOTION_PROFILES: dict[str, dict[str, float]] = {
    "Anger": {"AU4": 0.8, "AU7": 0.6},
    "Contempt": {"AU12": 0.5},
    "Disgust": {"AU9": 0.6, "AU10": 0.8},
    "Fear": {"AU1": 0.7, "AU2": 0.5, "AU20": 0.5, "AU25": 0.3},
    "Happiness": {"AU6": 0.6, "AU12": 1.2, "AU25": 0.3},
    "Neutral": {},
    "Sadness": {"AU1": 0.8, "AU4": 0.5},
    "Surprise": {"AU1": 0.9, "AU2": 0.9, "AU25": 0.5, "AU26": 0.5},
}
# How often each emotion is drawn: mostly neutral faces.
EMOTION_PROBS = {
    "Anger": 0.07, "Contempt": 0.06, "Disgust": 0.07, "Fear": 0.07,
    "Happiness": 0.10, "Neutral": 0.45, "Sadness": 0.12, "Surprise": 0.06,
}
# OU noise amplitude per AU relative to the subject's level (AU43: none).
_NOISE_SCALE = {a: (0.0 if a == "AU43" else 1.0) for a in aus.SEQ_AUS}
_NOISE_SCALE.update(AU1=1.3, AU2=1.2, AU25=1.2, AU26=0.8, AU27=0.3)


@dataclasses.dataclass(frozen=True)
class Subject:
  """Every parameter of one simulated person.

  Attributes:
    subject_id: the subject's index (also its rendering identity).
    seed: the master seed it was drawn from.
    threshold_c, tolerance_c: pain threshold and tolerance temperature,
      °C (BioVid's calibration: level 1 = threshold, level 4 = tolerance).
    gain: expressiveness gain, >= 0, heavy-tailed (many near zero).
    gamma: curvature of the response to the normalised stimulus (>= 1).
    latency_s: delay from stimulus to response onset, 0.3-1.5 s.
    rise_s, decay_s: time constants of the response going up and down.
    au_weights: (NUM_AUS,) response weight of each AU (SEQ_AUS order);
      AU43's weight is the propensity to close the eyes.
    au_lags_s: (NUM_AUS,) extra per-AU delay on top of latency_s.
    blink_rate_hz: Poisson rate of blinks (0.2-0.3 Hz).
    noise_sigma: (NUM_AUS,) stationary std of the OU baseline noise.
    noise_tau_s: OU correlation time.
    baseline: (NUM_AUS,) resting-face offsets (from the emotion).
    gain_mod_sigma, gain_mod_tau_s: slow log-normal modulation of the gain
      (one trial differs from the next).
    emotion: index into aus.EMOTIONS.
  """

  subject_id: int
  seed: int
  threshold_c: float
  tolerance_c: float
  gain: float
  gamma: float
  latency_s: float
  rise_s: float
  decay_s: float
  au_weights: tuple[float, ...]
  au_lags_s: tuple[float, ...]
  blink_rate_hz: float
  noise_sigma: tuple[float, ...]
  noise_tau_s: float
  baseline: tuple[float, ...]
  gain_mod_sigma: float
  gain_mod_tau_s: float
  emotion: int

  @property
  def threshold(self) -> float:
    """Threshold on the normalised drive axis (see programmes.py)."""
    return celsius_to_drive(self.threshold_c)

  @property
  def tolerance(self) -> float:
    """Tolerance on the normalised drive axis (see programmes.py)."""
    return celsius_to_drive(self.tolerance_c)

  @property
  def expressiveness(self) -> float:
    """The trait models are conditioned on: the PSPI without AU43 this
    subject shows at a full response (y = 1), without noise or emotion
    offsets, in [0, 15]. A subject-level constant on PainDiffusion's scale
    (which takes a clip's mean PSPI without AU43)."""
    peak = aus.saturate(PEAK_INTENSITY * self.gain
                        * np.asarray(self.au_weights, np.float32))
    peak[aus.AU_INDEX["AU43"]] = 0.0
    return float(aus.pspi(peak))

  def quiet(self) -> Subject:
    """This subject without noise, blinks or gain modulation (tests, plots
    of the deterministic response)."""
    zeros = (0.0,) * aus.NUM_AUS
    return dataclasses.replace(self, noise_sigma=zeros, blink_rate_hz=0.0,
                               gain_mod_sigma=0.0)


def celsius_to_drive(celsius: float | np.ndarray) -> float | np.ndarray:
  """°C -> the normalised drive: 0 at BioVid's 32 °C baseline, 1 at 50.5."""
  return (celsius - BASELINE_C) / (MAX_C - BASELINE_C)


def rng_for(seed: int, stream: int, subject_id: int, *more: int
            ) -> np.random.Generator:
  """The generator of one stream of one subject."""
  for name, v in (("seed", seed), ("subject_id", subject_id)):
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
      raise ValueError(f"{name} must be a non-negative int, got {v!r}")
  return np.random.default_rng(
      np.random.SeedSequence([int(seed), stream, int(subject_id), *more]))


def sample_gain(rng: np.random.Generator) -> float:
  """Heavy-tailed gain: a stoic/responder mixture of log-normals."""
  if rng.uniform() < STOIC_FRACTION:
    return float(_STOIC_GAIN * np.exp(_STOIC_SPREAD * rng.normal()))
  return float(_RESPONDER_GAIN * np.exp(_RESPONDER_SPREAD * rng.normal()))


def _au_weights(rng: np.random.Generator) -> np.ndarray:
  w = np.zeros(aus.NUM_AUS)
  core = len(_CORE) * rng.dirichlet(np.full(len(_CORE), _CORE_CONCENTRATION))
  for name, v in zip(_CORE, core, strict=True):
    w[aus.AU_INDEX[name]] = v
  for name, p in _OCCASIONAL.items():
    shows, weight = rng.uniform() < p, rng.uniform(*_OCCASIONAL_WEIGHT)
    w[aus.AU_INDEX[name]] = weight if shows else 0.0
  w[aus.AU_INDEX["AU43"]] = rng.uniform(0.0, 1.5)
  return w


def _baseline(rng: np.random.Generator, emotion: int) -> np.ndarray:
  b = np.zeros(aus.NUM_AUS)
  strength = rng.uniform(0.5, 1.5)
  for name, v in EMOTION_PROFILES[aus.EMOTIONS[emotion]].items():
    b[aus.AU_INDEX[name]] = strength * v
  return b


def sample_subject(seed: int, subject_id: int) -> Subject:
  """Draws subject `subject_id` of population `seed` (deterministic).

  Args:
    seed: master seed of the population (non-negative int).
    subject_id: the subject's index (non-negative int).

  Returns:
    The Subject; the same for the same (seed, subject_id) anywhere.
  """
  rng = rng_for(seed, SUBJECT_STREAM, subject_id)
  threshold = rng.uniform(40.0, 44.0)
  tolerance = min(threshold + rng.uniform(3.0, 6.0), MAX_C)
  emotion = int(rng.choice(len(aus.EMOTIONS), p=[
      EMOTION_PROBS[e] for e in aus.EMOTIONS]))
  level = rng.uniform(0.05, 0.25)
  noise = [level * _NOISE_SCALE[a] for a in aus.SEQ_AUS]
  as_tuple = lambda a: tuple(float(v) for v in a)
  return Subject(
      subject_id=int(subject_id),
      seed=int(seed),
      threshold_c=float(threshold),
      tolerance_c=float(tolerance),
      gain=sample_gain(rng),
      gamma=float(rng.uniform(1.0, 2.0)),
      latency_s=float(rng.uniform(0.3, 1.5)),
      rise_s=float(rng.uniform(0.3, 1.2)),
      decay_s=float(rng.uniform(0.8, 3.0)),
      au_weights=as_tuple(_au_weights(rng)),
      au_lags_s=as_tuple(rng.uniform(0.0, 0.2, aus.NUM_AUS)),
      blink_rate_hz=float(rng.uniform(0.2, 0.3)),
      noise_sigma=as_tuple(noise),
      noise_tau_s=float(rng.uniform(0.4, 2.0)),
      baseline=as_tuple(_baseline(rng, emotion)),
      gain_mod_sigma=float(rng.uniform(0.1, 0.35)),
      gain_mod_tau_s=float(rng.uniform(5.0, 20.0)),
      emotion=emotion,
  )
