"""The response model: deterministic, sharded by subject, in range, with
visible latency and rise, exact PSPI and BioVid-like blinks."""

import dataclasses

import numpy as np

from synth.sequences import aus, programmes, response
from synth.sequences import subject as subject_lib

SEED = 5


def test_records_are_deterministic_and_sharded_by_subject():
  one = response.simulate_subject(SEED, 5, duration_s=20.0)
  again = response.simulate_subject(SEED, 5, duration_s=20.0)
  shard = list(response.simulate_subjects(SEED, [3, 8, 5], duration_s=20.0))
  for rec in (again, shard[2]):
    for field in ("au", "pspi", "stimulus", "response", "blink"):
      np.testing.assert_array_equal(getattr(rec, field), getattr(one, field))
  assert [r.subject_id for r in shard] == [3, 8, 5]
  other_seed = response.simulate_subject(SEED + 1, 5, duration_s=20.0)
  assert not np.array_equal(other_seed.au, one.au)
  # Same stimulus, different subjects: independent noise, not shared.
  stim = programmes.stimulus_from_array(np.zeros(500))
  a, b = (response.simulate(subject_lib.sample_subject(SEED, i), stim, SEED)
          for i in (1, 2))
  noise_a, noise_b = a.au[:, aus.AU_INDEX["AU1"]], b.au[:, aus.AU_INDEX["AU1"]]
  if noise_a.std() and noise_b.std():
    assert abs(np.corrcoef(noise_a, noise_b)[0, 1]) < 0.3


def test_outputs_are_in_range_and_pspi_is_exact():
  for rec in response.simulate_subjects(SEED, range(12), duration_s=120.0):
    assert rec.au.dtype == np.float32 and rec.au.shape == (3000, aus.NUM_AUS)
    assert rec.au.min() >= 0 and rec.au.max() <= 5
    assert set(np.unique(rec.au[:, aus.AU_INDEX["AU43"]])) <= {0.0, 1.0}
    np.testing.assert_array_equal(rec.pspi, aus.pspi(rec.au))
    assert rec.pspi.max() <= aus.PSPI_MAX
    assert rec.stimulus.min() >= 0 and rec.stimulus.max() <= 1


def test_step_response_shows_latency_then_rise():
  subj = subject_lib.sample_subject(SEED, 9).quiet()
  stim = programmes.stimulus("step", 12.0, SEED, subj)
  rec = response.simulate(subj, stim, SEED)
  onset = int(np.argmax(stim.level > 0))
  lag = round(subj.latency_s * aus.FPS)
  y = rec.response
  assert np.all(y[:onset + lag] == y[0]) and y[onset + lag] > y[0]
  final = response.target(subj, stim.drive[-1:])[0]
  # A first-order rise: 63% of the step after rise_s (within a frame).
  reached = int(np.argmax(y >= y[0] + (1 - np.exp(-1)) * (final - y[0])))
  expected = onset + lag + subj.rise_s * aus.FPS - 1
  assert abs(reached - expected) <= 1
  core = rec.au[:, [aus.AU_INDEX[n] for n in ("AU4", "AU7", "AU10")]]
  before = core[:onset + lag].sum(1)
  assert np.ptp(before) == 0 and core[-1].sum() > before[0]


def test_decay_is_slower_than_rise_when_its_constant_is():
  subj = dataclasses.replace(subject_lib.sample_subject(SEED, 2).quiet(),
                             rise_s=0.4, decay_s=2.0, latency_s=0.4)
  pulse = np.r_[np.zeros(25), np.ones(200), np.zeros(300)]
  y = response.simulate(subj, programmes.stimulus_from_array(pulse),
                        SEED).response
  peak = y.max()
  up = np.argmax(y >= peak / 2)
  down = np.argmax((np.arange(len(y)) > np.argmax(y)) & (y <= peak / 2))
  lag = round(0.4 * aus.FPS)
  assert (down - 225 - lag) > 3 * (up - 25 - lag)


def test_blinks_follow_the_subject_rate_and_last_100_to_300_ms():
  subj = dataclasses.replace(subject_lib.sample_subject(SEED, 4).quiet(),
                             blink_rate_hz=0.25)
  minutes = 20
  stim = programmes.stimulus_from_array(np.zeros(minutes * 60 * aus.FPS))
  rec = response.simulate(subj, stim, SEED)
  closed = rec.au[:, aus.AU_INDEX["AU43"]] > 0
  np.testing.assert_array_equal(closed, rec.blink)  # no pain, no closure
  edges = np.diff(np.r_[0, closed.astype(int), 0])
  lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
  rate = len(lengths) / (minutes * 60)
  assert 0.2 <= rate <= 0.3  # 300 expected blinks: +-6% (1 sd)
  short = (lengths >= 0.1 * aus.FPS - 1) & (lengths <= 0.3 * aus.FPS + 1)
  assert np.mean(short) > 0.95  # the rest are overlapping blinks


def test_stoics_barely_move_and_strong_responders_saturate():
  subj = subject_lib.sample_subject(SEED, 0)
  stim = programmes.stimulus("step", 20.0, SEED, subj)
  peaks = {}
  for gain in (0.01, 5.0):
    s = dataclasses.replace(subj, gain=gain).quiet()
    peaks[gain] = response.simulate(s, stim, SEED).au[-25:].max(0)
  core = [aus.AU_INDEX[n] for n in ("AU4", "AU6", "AU7", "AU9", "AU10")]
  base = np.asarray(subj.baseline)[core]
  assert np.all(peaks[0.01][core] - base < 0.2)
  assert peaks[5.0][core].max() > 4.5 and peaks[5.0].max() <= 5.0
