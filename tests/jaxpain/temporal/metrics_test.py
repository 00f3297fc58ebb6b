"""Metrics in AU space: DTW, Pearson, the PainDiffusion set."""

import numpy as np
import pytest

from jaxpain.temporal import metrics
from synth import sequences as sq


def _dtw_reference(a, b):
  t, u = len(a), len(b)
  acc = np.full((t + 1, u + 1), np.inf)
  acc[0, 0] = 0.0
  for i in range(t):
    for j in range(u):
      acc[i + 1, j + 1] = abs(a[i] - b[j]) + min(acc[i, j + 1],
                                                 acc[i + 1, j], acc[i, j])
  return acc[t, u] / t


def test_dtw_matches_the_textbook_recursion():
  rng = np.random.default_rng(0)
  a, b = rng.random((3, 15)), rng.random((3, 11))
  want = [_dtw_reference(a[k], b[k]) for k in range(3)]
  np.testing.assert_allclose(metrics.dtw(a, b), want, rtol=1e-12)
  # A time shift costs DTW little but Pearson a lot.
  x = np.sin(np.linspace(0, 6, 80))
  assert metrics.dtw(x, np.roll(x, 3)) < 0.1 * np.abs(x - np.roll(x, 3)).sum()


def _seqs(seed=0, n=2, t=120):
  rng = np.random.default_rng(seed)
  gt = np.clip(rng.normal(1, 0.5, (n, t, sq.NUM_AUS)), 0, 5)
  gt[..., sq.AU_INDEX["AU43"]] = rng.random((n, t)) < 0.1
  stim = rng.random((n, t))
  return gt.astype(np.float32), stim.astype(np.float32)


def test_ground_truth_scores_perfectly_and_mean_face_has_no_corr():
  gt, stim = _seqs()
  m = metrics.compute(gt[None].repeat(2, 0), gt, stim)
  assert m["PainDist"] == 0.0 and m["PainDivrs"] == 0.0
  assert m["PainCorr"] == pytest.approx(1.0) and m["PainSim"] == 0.0
  ref = metrics.reference(gt, stim)
  assert m["PainAcc"] == pytest.approx(ref["PainAcc"])
  assert m["PainVar"] == pytest.approx(ref["PainVar"])
  flat = np.broadcast_to(gt.mean((0, 1)), (2,) + gt.shape)
  mf = metrics.compute(flat, gt, stim)
  assert mf["PainCorr"] == 0.0 and mf["jerk"] == 0.0 and mf["PainVar"] == 0


def test_corr_max_over_samples_is_at_least_the_mean():
  gt, stim = _seqs()
  rng = np.random.default_rng(1)
  gen = gt[None] + rng.normal(0, 1.0, (4,) + gt.shape)
  m = metrics.compute(gen, gt, stim)
  assert m["PainCorr_max"] >= m["PainCorr"]
  assert 0 < m["PainCorr"] < 1 and m["PainDivrs"] > 0
  with pytest.raises(ValueError):
    metrics.compute(gen[0], gt, stim)


def test_jerk_sees_jitter_not_slow_motion():
  t = np.linspace(0, 4, 100)[:, None] * np.ones((1, sq.NUM_AUS))
  smooth = 2 + np.sin(t)
  jitter = smooth + 0.05 * np.random.default_rng(0).normal(size=t.shape)
  assert metrics.jerk(jitter) > 100 * metrics.jerk(smooth)
