"""The stimulus -> AU response model: one subject, one stimulus, one record.

Per frame t (aus.FPS), with drive u(t) in [0, 1] (programmes.py):

1. Subject-normalised intensity p = (u - threshold) / (tolerance - threshold)
   (0 at the subject's threshold, 1 at its tolerance).
2. Nonlinearity h = clip((p + ONSET_MARGIN) / (1 + ONSET_MARGIN), 0,
   OVERDRIVE) ** gamma: a faint response at threshold, 1 at tolerance,
   a little more above it, nothing well below it.
3. Lag by `latency_s`, then an asymmetric first-order low-pass: time
   constant `rise_s` while the target is above the response, `decay_s`
   while it is below. The result y(t) starts at its steady state.
4. Gain: a(t) = PEAK_INTENSITY * gain * y(t) * m(t), where m(t) is a slow
   log-normal OU modulation, smoothed over MODULATION_SMOOTH_S (no two
   trials alike).
5. Mixing: AU_k(t) = saturate(baseline_k + w_k a(t - lag_k) + n_k(t)) for
   graded AUs, with per-AU weights w_k, extra lags lag_k, resting offsets
   baseline_k (emotion) and OU noise n_k; `aus.saturate` is 0 below 0, the
   identity up to 4 and approaches 5 smoothly.
6. AU43 (eyes closed, binary) = a blink (Poisson onsets at blink_rate_hz,
   100-300 ms each) or pain-driven closure (gain * w_AU43 * y * m above
   CLOSURE_LEVEL).
7. PSPI(t) = aus.pspi(AU(t)), exact per frame.

Randomness comes from `SeedSequence([seed, NOISE_STREAM, subject_id])`, so
one subject's record never depends on another's (sharding by subject).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import numpy as np
from scipy import signal

from synth.sequences import aus, programmes
from synth.sequences import subject as subject_lib

ONSET_MARGIN = 0.2
OVERDRIVE = 1.25
CLOSURE_LEVEL = 0.5
MODULATION_SMOOTH_S = 1.0
BLINK_S = (0.1, 0.3)
_AU43 = aus.AU_INDEX["AU43"]


@dataclasses.dataclass(frozen=True)
class SequenceRecord:
  """One simulated sequence of one subject.

  Attributes:
    subject_id: the subject (and its rendering identity).
    seed: the master seed the noise was drawn from.
    programme: the stimulus programme's name.
    au: (T, NUM_AUS) float32 in SEQ_AUS order, 0..5 (AU43 in {0, 1}).
    pspi: (T,) float32, aus.pspi(au).
    stimulus: (T,) float32, the normalised drive in [0, 1] (the model's
      per-frame stimulus condition).
    stimulus_values: (T,) float32, the stimulus in `stimulus_unit`.
    stimulus_unit: a key of programmes.UNIT_RANGES.
    level: (T,) int8, BioVid level 1..4 during plateaus (steps), else 0.
    response: (T,) float32, the latent response y(t) m(t) before mixing.
    blink: (T,) bool, frames inside a blink.
    expressiveness: the subject's trait (Subject.expressiveness, 0..15).
    emotion: the subject's emotion, an index into aus.EMOTIONS.
  """

  subject_id: int
  seed: int
  programme: str
  au: np.ndarray
  pspi: np.ndarray
  stimulus: np.ndarray
  stimulus_values: np.ndarray
  stimulus_unit: str
  level: np.ndarray
  response: np.ndarray
  blink: np.ndarray
  expressiveness: float
  emotion: int

  @property
  def num_frames(self) -> int:
    return int(self.au.shape[0])

  @property
  def duration_s(self) -> float:
    return self.num_frames / aus.FPS


def target(subject: subject_lib.Subject, drive: np.ndarray) -> np.ndarray:
  """Steps 1-2: the instantaneous response target h(t) in [0, 1.25**g]."""
  span = max(subject.tolerance - subject.threshold, 1e-3)
  p = (np.asarray(drive, np.float64) - subject.threshold) / span
  h = np.clip((p + ONSET_MARGIN) / (1 + ONSET_MARGIN), 0.0, OVERDRIVE)
  return h ** subject.gamma


def _delay(x: np.ndarray, frames: int) -> np.ndarray:
  """x shifted later by `frames`, holding its first value before."""
  if frames <= 0:
    return x
  return np.concatenate([np.full(frames, x[0]), x[:-frames]])


def low_pass(h: np.ndarray, rise_s: float, decay_s: float) -> np.ndarray:
  """Step 3's asymmetric first-order filter, starting at steady state."""
  up = 1.0 - np.exp(-1.0 / (rise_s * aus.FPS))
  down = 1.0 - np.exp(-1.0 / (decay_s * aus.FPS))
  out = np.empty(len(h))
  y = float(h[0])
  for t, x in enumerate(h.tolist()):
    y += (up if x > y else down) * (x - y)
    out[t] = y
  return out


def response(subject: subject_lib.Subject, drive: np.ndarray) -> np.ndarray:
  """Steps 1-3: the noise-free latent response y(t) (float64)."""
  lag = int(round(subject.latency_s * aus.FPS))
  return low_pass(_delay(target(subject, drive), lag), subject.rise_s,
                  subject.decay_s)


def ou_noise(rng: np.random.Generator, num_frames: int, tau_s: float,
             sigma: np.ndarray) -> np.ndarray:
  """(T, len(sigma)) stationary Ornstein-Uhlenbeck noise, one column each."""
  sigma = np.asarray(sigma, np.float64)
  rho = np.exp(-1.0 / (tau_s * aus.FPS))
  eps = rng.standard_normal((num_frames, sigma.size))
  eps[0] /= np.sqrt(1 - rho**2)  # x[0] ~ N(0, 1): stationary from frame 0.
  x = signal.lfilter([np.sqrt(1 - rho**2)], [1, -rho], eps, axis=0)
  return x * sigma


def gain_modulation(rng: np.random.Generator, num_frames: int,
                    subject: subject_lib.Subject) -> np.ndarray:
  """Step 4's m(t) = exp(OU), the OU smoothed by a MODULATION_SMOOTH_S
  low-pass so that m has no frame-to-frame jitter (a raw OU path does,
  which would make thresholds such as eye closure chatter)."""
  slow = ou_noise(rng, num_frames, subject.gain_mod_tau_s,
                  [subject.gain_mod_sigma])[:, 0]
  a = np.exp(-1.0 / (MODULATION_SMOOTH_S * aus.FPS))
  smooth, _ = signal.lfilter([1 - a], [1, -a], slow, zi=[a * slow[0]])
  return np.exp(smooth)


def blinks(rng: np.random.Generator, num_frames: int, rate_hz: float
           ) -> np.ndarray:
  """(T,) bool: Poisson blink onsets, each lasting BLINK_S seconds."""
  mask = np.zeros(num_frames, bool)
  count = rng.poisson(rate_hz * num_frames / aus.FPS)
  onsets = rng.integers(0, num_frames, count)
  lengths = np.maximum(1, np.round(rng.uniform(*BLINK_S, count) * aus.FPS))
  for start, length in zip(onsets, lengths.astype(int), strict=True):
    mask[start:start + length] = True
  return mask


def simulate(subject: subject_lib.Subject, stim: programmes.Stimulus,
             seed: int) -> SequenceRecord:
  """Simulates `subject` under `stim` (module docstring).

  Args:
    subject: the person (subject.sample_subject).
    stim: the stimulus (programmes.stimulus / stimulus_from_csv).
    seed: master seed of the noise, blinks and gain modulation.

  Returns:
    The SequenceRecord; the same for the same (subject, stim, seed).
  """
  rng = subject_lib.rng_for(seed, subject_lib.NOISE_STREAM,
                            subject.subject_id)
  n = stim.num_frames
  y = response(subject, stim.drive)
  y = y * gain_modulation(rng, n, subject)
  noise = ou_noise(rng, n, subject.noise_tau_s, subject.noise_sigma)
  blink = blinks(rng, n, subject.blink_rate_hz)
  lags = np.round(np.asarray(subject.au_lags_s) * aus.FPS).astype(int)
  lagged = y[np.maximum(np.arange(n)[:, None] - lags[None, :], 0)]
  weights = np.asarray(subject.au_weights)
  drive = subject_lib.PEAK_INTENSITY * subject.gain * weights * lagged
  au = aus.saturate(np.asarray(subject.baseline) + drive + noise)
  closed = subject.gain * weights[_AU43] * lagged[:, _AU43] > CLOSURE_LEVEL
  au[:, _AU43] = (blink | closed).astype(np.float32)
  return SequenceRecord(
      subject_id=subject.subject_id,
      seed=int(seed),
      programme=stim.name,
      au=au,
      pspi=aus.pspi(au).astype(np.float32),
      stimulus=stim.drive,
      stimulus_values=stim.values,
      stimulus_unit=stim.unit,
      level=stim.level,
      response=y.astype(np.float32),
      blink=blink,
      expressiveness=subject.expressiveness,
      emotion=subject.emotion,
  )


def simulate_subject(seed: int, subject_id: int, programme: str = "biovid",
                     duration_s: float = 60.0) -> SequenceRecord:
  """Subject `subject_id` of population `seed` under a named programme."""
  subject = subject_lib.sample_subject(seed, subject_id)
  stim = programmes.stimulus(programme, duration_s, seed, subject)
  return simulate(subject, stim, seed)


def simulate_subjects(seed: int, subject_ids: Iterable[int],
                      programme: str = "biovid", duration_s: float = 60.0
                      ) -> Iterator[SequenceRecord]:
  """Yields simulate_subject for each id: any shard of ids, any process,
  the same records (each depends only on (seed, subject_id))."""
  for subject_id in subject_ids:
    yield simulate_subject(seed, subject_id, programme, duration_s)
