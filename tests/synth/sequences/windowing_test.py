"""Training windows and the per-minute drift bounds of long sequences."""

import numpy as np
import pytest

from synth.sequences import aus, response, windowing


@pytest.fixture(scope="module")
def record():
  return response.simulate_subject(0, 3, duration_s=90.0)


def test_windows_are_slices_of_the_record(record):
  batch = windowing.windows(record, 64, stride=10)
  n = (record.num_frames - 64) // 10 + 1
  assert batch["au"].shape == (n, 64, aus.NUM_AUS)
  assert batch["pspi"].shape == batch["stimulus"].shape == (n, 64)
  for i in (0, 7, n - 1):
    s = batch["start"][i]
    np.testing.assert_array_equal(batch["au"][i], record.au[s:s + 64])
    np.testing.assert_array_equal(batch["stimulus"][i],
                                  record.stimulus[s:s + 64])
  assert np.all(batch["expressiveness"] == np.float32(record.expressiveness))
  assert np.all(batch["emotion"] == record.emotion)
  assert windowing.windows(record, record.num_frames + 1)["au"].shape[0] == 0
  with pytest.raises(ValueError, match="window starts"):
    windowing.windows(record, 64, starts=[record.num_frames - 10])


def test_transition_starts_surround_level_changes(record):
  starts = windowing.transition_starts(record, 32, before=50, after=150)
  changes = np.flatnonzero(np.diff(record.level.astype(int))) + 1
  assert len(changes) >= 4 and len(starts) > 0
  dist = np.abs(starts[:, None] - changes[None, :]).min(1)
  assert np.all(dist <= 150)
  assert np.all(starts + 32 <= record.num_frames)


def test_minute_stats():
  au = np.zeros((2 * windowing.FRAMES_PER_MINUTE + 7, aus.NUM_AUS))
  au[windowing.FRAMES_PER_MINUTE:2 * windowing.FRAMES_PER_MINUTE, 2] = (
      np.tile([0.0, 2.0], windowing.FRAMES_PER_MINUTE // 2))
  mean, var = windowing.minute_stats(au)
  assert mean.shape == var.shape == (2, aus.NUM_AUS)
  assert mean[0, 2] == 0 and mean[1, 2] == 1 and var[1, 2] == 1


@pytest.fixture(scope="module")
def bounds():
  return windowing.minute_bounds(0, range(48), minutes=10)


def test_long_simulations_stay_in_bounds_set_by_other_subjects(bounds):
  for rec in response.simulate_subjects(1, range(100, 104),
                                        duration_s=30 * 60.0):
    assert windowing.minute_stats(rec.au)[0].shape[0] == 30
    assert bounds.violations(rec.au) == []


def test_bounds_catch_a_frozen_and_a_drifting_rollout(bounds):
  rec = response.simulate_subject(2, 7, duration_s=180.0)
  assert bounds.violations(rec.au) == []
  frozen = rec.au.copy()
  frozen[windowing.FRAMES_PER_MINUTE:] = rec.au[windowing.FRAMES_PER_MINUTE]
  found = bounds.violations(frozen)
  assert found and all("frozen" in v for v in found)
  assert {v.split(":")[0] for v in found} == {"minute 1", "minute 2"}
  # Graded AUs creeping up to 5 over the last minute.
  drift = rec.au.copy()
  creep = np.clip(np.arange(len(drift)) / windowing.FRAMES_PER_MINUTE - 2,
                  0, 1)
  drift[:, :-1] = np.minimum(drift[:, :-1] + 5 * creep[:, None], 5)
  found = bounds.violations(drift)
  assert any(v.startswith("minute 2") and "mean" in v for v in found)
  assert not any(v.startswith(("minute 0", "minute 1")) for v in found)
