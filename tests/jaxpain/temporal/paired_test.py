"""Paired comparisons: per-segment scores agree with the aggregate
metrics, the advantage is signed by each metric's direction, and the
intervals separate a real difference from noise."""

import numpy as np
import pytest

from jaxpain.temporal import metrics, paired


def _sequences(rng, s=3, n=6, t=40, k=13):
  gt = rng.uniform(0, 3, (n, t, k)).astype(np.float32)
  gen = np.clip(gt[None] + rng.normal(0, 0.7, (s, n, t, k)), 0, 5)
  return gen.astype(np.float32), gt


def test_per_segment_means_are_the_aggregate_metrics():
  rng = np.random.default_rng(0)
  gen, gt = _sequences(rng)
  stim = rng.uniform(0, 1, gt.shape[:2])
  agg = metrics.compute(gen, gt, stim)
  seg = paired.per_segment(gen, gt)
  for m in paired.COMPARED:
    assert seg[m].shape == (gt.shape[0],)
    np.testing.assert_allclose(seg[m].mean(), agg[m], rtol=1e-9)
  # The evaluation passes the per-sample scores in so the DTW runs once.
  again = metrics.compute(gen, gt, stim, metrics.sample_scores(gen, gt))
  assert again == agg


def test_advantage_is_positive_where_ours_is_better():
  better = np.array([0.5, 0.6, 0.7])
  worse = np.array([0.4, 0.5, 0.6])
  np.testing.assert_allclose(
      paired.advantage(better, worse, "PainCorr"), 0.1)  # higher better
  np.testing.assert_allclose(
      paired.advantage(worse, better, "PainSim"), 0.1)  # lower better


def test_a_constant_advantage_has_a_point_interval():
  adv = np.full(20, 0.05)
  s = paired.summarise(adv, rounds=200)
  assert s["mean"] == pytest.approx(0.05)
  assert s["lo"] == pytest.approx(0.05) and s["hi"] == pytest.approx(0.05)
  assert s["better"] == 1.0


def test_interval_contains_zero_for_noise_and_excludes_it_for_a_shift():
  rng = np.random.default_rng(1)
  noise = rng.normal(0, 1, 400)
  noise -= noise.mean()  # exactly no difference on average
  s = paired.summarise(noise, rounds=500)
  assert s["lo"] < 0 < s["hi"]
  shifted = paired.summarise(noise + 0.5, rounds=500)
  assert shifted["lo"] > 0


def test_seed_level_spread_widens_the_pooled_interval():
  # Within each seed the advantage is clear, but it flips sign between
  # seeds: the two-level bootstrap must not call that a win.
  rng = np.random.default_rng(2)
  advs = [m + rng.normal(0, 0.01, 100) for m in (0.05, -0.05, 0.05, -0.05)]
  per_seed = [paired.summarise(a, rounds=300) for a in advs]
  assert all(p["lo"] > 0 or p["hi"] < 0 for p in per_seed)
  pooled = paired.over_seeds(advs, rounds=300)
  assert pooled["lo"] < 0 < pooled["hi"]
  assert pooled["seeds_better"] == 2 and pooled["seeds"] == 4


def test_compare_and_table_cover_every_other_method():
  rng = np.random.default_rng(3)
  per_seed = [{name: {m: rng.uniform(0, 1, 8) for m in paired.COMPARED}
               for name in ("ours", "full", "nearest")} for _ in range(3)]
  out = paired.compare(per_seed, "ours", rounds=100)
  assert set(out) == {"full", "nearest"}
  assert len(out["full"]["PainSim"]["per_seed"]) == 3
  text = paired.table(out)
  assert "| full |" in text and "| nearest |" in text
  assert text.count("/3") == 2 * len(paired.COMPARED)


@pytest.mark.parametrize("ours,other,metric,match", [
    (np.ones(3), np.ones(4), "PainCorr", "same segments"),
    (np.array([1.0, np.nan]), np.ones(2), "PainSim", "NaN"),
    (np.ones(3), np.ones(3), "jerk", "no better direction"),
])
def test_bad_input_names_the_problem(ours, other, metric, match):
  with pytest.raises(ValueError, match=match):
    paired.advantage(ours, other, metric)
