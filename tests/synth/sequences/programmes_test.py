"""Stimulus programmes: BioVid's protocol, steps, joint curves and CSVs."""

import numpy as np
import pytest

from synth.sequences import aus, programmes
from synth.sequences import subject as subject_lib


def _runs(mask):
  """(start, length) of each run of True."""
  edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
  starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
  return list(zip(starts, ends - starts, strict=True))


def test_biovid_follows_the_protocol():
  subj = subject_lib.sample_subject(0, 2)
  stim = programmes.stimulus("biovid", 600.0, 0, subj)
  assert stim.num_frames == 600 * aus.FPS and stim.unit == "°C"
  temps = programmes.level_temperatures(subj)
  np.testing.assert_allclose(temps[[0, -1]],
                             [subj.threshold_c, subj.tolerance_c])
  plateaus = _runs(stim.level > 0)
  assert len(plateaus) >= 25
  for start, length in plateaus[:-1]:  # the last may be cut by the end
    assert abs(length - programmes.PLATEAU_S * aus.FPS) <= 1
    lvl = stim.level[start]
    np.testing.assert_allclose(stim.values[start:start + length],
                               temps[lvl - 1], atol=1e-4)
  rests = _runs(stim.values <= subject_lib.BASELINE_C + 1e-4)
  for _, length in rests[1:-1]:
    assert 8 * aus.FPS - 1 <= length <= 12 * aus.FPS + 2
  order = [stim.level[s] for s, _ in plateaus]
  assert set(order) == {1, 2, 3, 4} and order != sorted(order)
  assert 0 <= stim.drive.min() and stim.drive.max() <= 1


def test_programmes_are_deterministic_per_seed_and_subject():
  a, b = subject_lib.sample_subject(0, 1), subject_lib.sample_subject(0, 2)
  same = programmes.stimulus("biovid", 60.0, 0, a)
  np.testing.assert_array_equal(
      same.values, programmes.stimulus("biovid", 60.0, 0, a).values)
  assert not np.array_equal(
      same.values, programmes.stimulus("biovid", 60.0, 0, b).values)
  assert not np.array_equal(
      same.values, programmes.stimulus("biovid", 60.0, 1, a).values)


def test_step_and_joint():
  subj = subject_lib.sample_subject(0, 4)
  step = programmes.stimulus("step", 8.0, 0, subj)
  onset = int(programmes.STEP_ONSET_S * aus.FPS)
  assert np.all(step.values[:onset] == np.float32(subject_lib.BASELINE_C))
  assert np.all(step.values[onset:] == np.float32(subj.tolerance_c))
  joint = programmes.stimulus("joint", 60.0, 5)
  assert joint.unit == "deg" and 0 <= joint.values.min()
  assert joint.values.max() <= 150 and np.ptp(joint.values) > 60
  assert np.abs(np.diff(joint.values)).max() < 10  # smooth, no jumps
  with pytest.raises(ValueError, match="unknown stimulus programme"):
    programmes.stimulus("sine", 5.0, 0)
  with pytest.raises(ValueError, match="duration_s"):
    programmes.stimulus("step", 0, 0)


def test_csv_is_resampled_and_bad_files_are_named(tmp_path):
  good = tmp_path / "angle.csv"
  t = np.arange(0, 4.0, 0.01)  # 100 Hz
  rows = "\n".join(f"{a:.2f},{75 + 70 * np.sin(a):.3f}" for a in t)
  good.write_text("time,angle\n" + rows + "\n")
  stim = programmes.stimulus_from_csv(good, unit="deg")
  assert stim.num_frames == int(3.99 * aus.FPS) + 1
  np.testing.assert_allclose(stim.values[25], 75 + 70 * np.sin(1.0),
                             atol=1e-3)
  np.testing.assert_allclose(stim.drive, stim.values / 150, atol=1e-6)
  with pytest.raises(ValueError, match="outside the drive range"):
    programmes.stimulus_from_csv(good)  # degrees read as a 0..1 drive
  with pytest.raises(ValueError, match="no column 'temp'"):
    programmes.stimulus_from_csv(good, column="temp", unit="deg")
  bad = tmp_path / "bad.csv"
  bad.write_text("time,angle\n0,1\n0,2\n")
  with pytest.raises(ValueError, match="must increase"):
    programmes.stimulus_from_csv(bad, unit="deg")
  with pytest.raises(ValueError, match="cannot read"):
    programmes.stimulus_from_csv(tmp_path / "missing.csv")
