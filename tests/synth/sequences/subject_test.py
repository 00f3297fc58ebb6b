"""Subjects: deterministic per (seed, id), parameters in their documented
ranges, a heavy-tailed gain with many near-zero responders."""

import dataclasses

import numpy as np
import pytest

from synth.sequences import aus
from synth.sequences import subject as subject_lib


@pytest.fixture(scope="module")
def population():
  return [subject_lib.sample_subject(3, i) for i in range(1000)]


def test_a_subject_depends_only_on_seed_and_id():
  a = subject_lib.sample_subject(3, 17)
  assert a == subject_lib.sample_subject(3, 17)
  assert a != subject_lib.sample_subject(3, 18)
  assert a != subject_lib.sample_subject(4, 17)
  with pytest.raises(ValueError, match="subject_id"):
    subject_lib.sample_subject(0, -1)


def test_parameters_lie_in_their_ranges(population):
  for s in population:
    assert 40 <= s.threshold_c < s.tolerance_c <= subject_lib.MAX_C
    assert 0 < s.threshold < s.tolerance <= 1
    assert 0.3 <= s.latency_s <= 1.5
    assert 0.2 <= s.blink_rate_hz <= 0.3
    assert s.rise_s > 0 and s.decay_s > 0 and s.gamma >= 1
    assert len(s.au_weights) == aus.NUM_AUS == len(s.noise_sigma)
    assert 0 <= s.expressiveness <= 15
    assert 0 <= s.emotion < len(aus.EMOTIONS)
  emotions = np.bincount([s.emotion for s in population], minlength=8)
  assert emotions.min() > 0 and emotions.argmax() == aus.NEUTRAL_EMOTION


def test_gain_is_heavy_tailed_with_many_near_zero(population):
  gain = np.array([s.gain for s in population])
  assert np.all(gain >= 0)
  assert 0.2 <= np.mean(gain < 0.1) <= 0.4  # near-zero responders
  assert np.mean(gain > 1.0) >= 0.04  # a long upper tail
  assert np.quantile(gain, 0.99) > 8 * np.median(gain)
  log_gain = np.log(gain)
  z = (log_gain - log_gain.mean()) / log_gain.std()
  assert np.mean(z**4) > 2.0  # not a narrow bump even in log space


def test_mixture_weights_centre_on_the_pain_core(population):
  w = np.array([s.au_weights for s in population])
  core = [aus.AU_INDEX[n] for n in ("AU4", "AU6", "AU7", "AU9", "AU10")]
  np.testing.assert_allclose(w[:, core].sum(1), 5.0, rtol=1e-6)
  assert np.all(w[:, core].std(0) > 0.2)  # Dirichlet variation
  for name in ("AU12", "AU20", "AU25", "AU26", "AU27"):
    shows = np.mean(w[:, aus.AU_INDEX[name]] > 0)
    assert 0.03 < shows < 0.5, name  # occasional, not never or always


def test_expressiveness_grows_with_gain():
  s = subject_lib.sample_subject(0, 5)
  gains = [0.0, 0.1, 0.3, 1.0, 3.0]
  values = [dataclasses.replace(s, gain=g).expressiveness for g in gains]
  assert values[0] == 0 and np.all(np.diff(values) > 0)
