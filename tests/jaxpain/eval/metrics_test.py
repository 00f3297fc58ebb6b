"""jaxpain.eval.metrics against scikit-learn and SciPy, edge cases included."""

import math

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from jaxpain.eval import metrics

TOL = 1e-6


def _cases():
  rng = np.random.default_rng(0)
  n = 500
  pspi = rng.integers(0, 17, n).astype(float) * (rng.random(n) < 0.4)
  yield "random", pspi, pspi * 0.5 + rng.normal(0, 1.5, n)
  # Heavy ties: integer predictions on an integer grid.
  yield "ties", pspi, np.round(pspi * 0.3 + rng.normal(0, 1, n))
  yield "tiny", np.array([0.0, 3.0, 1.0, 0.0]), np.array([0.1, 2.0, 2.0, 0.1])


@pytest.mark.parametrize("name,y,p", list(_cases()))
def test_regression_metrics_match_sklearn_scipy(name, y, p):
  assert metrics.mae(y, p) == pytest.approx(
      skm.mean_absolute_error(y, p), abs=TOL)
  assert metrics.pearson_r(y, p) == pytest.approx(
      stats.pearsonr(y, p).statistic, abs=TOL)


@pytest.mark.parametrize("name,y,p", list(_cases()))
def test_auroc_matches_sklearn_with_ties(name, y, p):
  for t in metrics.THRESHOLDS:
    lab = y >= t
    if lab.all() or not lab.any():
      continue
    assert metrics.auroc(lab, p) == pytest.approx(
        skm.roc_auc_score(lab, p), abs=TOL)
    fpr, tpr = metrics.roc_curve(lab, p)
    sk_fpr, sk_tpr, _ = skm.roc_curve(lab, p, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=TOL)
    np.testing.assert_allclose(tpr, sk_tpr, atol=TOL)


def test_auroc_constant_scores_is_half_and_single_class_is_nan():
  lab = np.array([0, 1, 0, 1, 1])
  assert metrics.auroc(lab, np.full(5, 2.0)) == pytest.approx(
      skm.roc_auc_score(lab, np.full(5, 2.0)), abs=TOL)
  assert math.isnan(metrics.auroc(np.zeros(5), np.arange(5.0)))


def test_pearson_degenerate_is_zero():
  assert metrics.pearson_r([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]) == 0.0
  assert metrics.pearson_r([0.0, 0.0], [1.0, 2.0]) == 0.0
  assert metrics.pearson_r([1.0], [2.0]) == 0.0


def test_nan_inputs_raise_with_count():
  with pytest.raises(ValueError, match="1 NaN"):
    metrics.mae([0.0, np.nan], [0.0, 1.0])


def _sk_grid(true_bin, scores):
  """scikit-learn's F1 of `scores >= tau` over the released grid."""
  return [skm.f1_score(true_bin, scores >= tau, zero_division=0)
          for tau in np.linspace(0, 6, 200)]


def _sk_calibrate(true_bin, scores, f1s=None):
  """The released loop (strictly greater F1 replaces), as the oracle."""
  best_f1, best_tau = -1.0, 0.0
  f1s = _sk_grid(true_bin, scores) if f1s is None else f1s
  for tau, f1 in zip(np.linspace(0, 6, 200), f1s, strict=True):
    if f1 > best_f1:
      best_f1, best_tau = f1, tau
  return best_tau, best_f1


@pytest.mark.parametrize("name,y,p", list(_cases()))
def test_calibration_matches_released_loop(name, y, p):
  for t in metrics.THRESHOLDS:
    tb = y >= t
    want_f1 = _sk_grid(tb, p)
    np.testing.assert_allclose(
        metrics.f1_over_grid(tb, p), want_f1, atol=TOL)
    tau, f1 = metrics.calibrate_threshold(tb, p)
    sk_tau, sk_f1 = _sk_calibrate(tb, p, want_f1)
    assert tau == sk_tau and f1 == pytest.approx(sk_f1, abs=TOL)


def test_calibration_first_max_wins_on_ties():
  # Every score is below 1, so every tau in (0.97, 6] predicts nothing (F1=0)
  # and all taus <= 0.9 predict everything: the smallest tau (0) must win.
  y = np.array([1, 0, 1, 1])
  p = np.array([0.9, 0.9, 0.9, 0.9])
  tau, f1 = metrics.calibrate_threshold(y, p)
  assert tau == 0.0
  assert f1 == pytest.approx(skm.f1_score(y, np.ones(4)), abs=TOL)


def test_train_calibrated_f1_applies_train_tau_to_test():
  rng = np.random.default_rng(1)
  tr_y = rng.integers(0, 8, 300).astype(float)
  tr_p = tr_y + rng.normal(0, 1, 300)
  te_y = rng.integers(0, 8, 100).astype(float)
  te_p = te_y + rng.normal(0, 1, 100)
  out = metrics.train_calibrated_f1(tr_y, tr_p, te_y, te_p)
  f1s = []
  for t in (1, 2, 3):
    tau, _ = _sk_calibrate(tr_y >= t, tr_p)
    assert out[f"tau_{t}"] == tau
    want = skm.f1_score(te_y >= t, te_p >= tau, zero_division=0)
    assert out[f"f1_{t}"] == pytest.approx(want, abs=TOL)
    assert out[f"precision_{t}"] == pytest.approx(
        skm.precision_score(te_y >= t, te_p >= tau, zero_division=0), abs=TOL)
    assert out[f"recall_{t}"] == pytest.approx(
        skm.recall_score(te_y >= t, te_p >= tau, zero_division=0), abs=TOL)
    f1s.append(want)
  assert out["f1_macro"] == pytest.approx(np.mean(f1s), abs=TOL)


def test_single_class_train_threshold_is_zero_and_left_out_of_macro():
  tr_y = np.array([0.0, 1.0, 2.0, 0.0, 1.0])  # nothing >= 3 in train
  tr_p = np.array([0.0, 1.0, 2.5, 0.2, 0.9])
  te_y = np.array([0.0, 3.0, 4.0, 1.0])
  te_p = np.array([0.1, 3.0, 3.5, 1.2])
  out = metrics.train_calibrated_f1(tr_y, tr_p, te_y, te_p)
  assert out["f1_3"] == 0.0 and out["calibrated_3"] == 0.0
  assert math.isnan(out["tau_3"])
  assert out["f1_macro"] == pytest.approx((out["f1_1"] + out["f1_2"]) / 2)


def test_constant_predictions_give_zero_r_half_auroc():
  y = np.array([0.0, 0.0, 2.0, 5.0, 1.0, 0.0])
  p = np.full(6, 1.5)
  m = metrics.pspi_metrics(y, p, y, p)
  assert m["pearson"] == 0.0
  assert m["auroc_1"] == pytest.approx(0.5)
  # tau 0..1.5 predicts everything positive: F1 = 2P/(P + N).
  assert m["f1_1"] == pytest.approx(skm.f1_score(y >= 1, np.ones(6)))


def test_au_metrics_and_derived_pspi():
  au_t = np.array([[1, 2, 3, 0, 1, 1], [0, 0, 0, 0, 0, 0]], float)
  au_p = np.array([[1, 1, 3, 1, 1, 0], [1, 0, 0, 0, 0, 0]], float)
  out = metrics.au_metrics(au_t, au_p, pspi_true=[6.0, 0.0])
  assert out["mae_AU4"] == pytest.approx(0.5)
  assert out["mae_AU43"] == pytest.approx(0.5)
  # derived PSPI of predictions: 1+3+1+0 = 5 and 1.
  np.testing.assert_allclose(metrics.au_pspi(au_p), [5.0, 1.0])
  assert out["au_pspi_mae"] == pytest.approx(1.0)


def test_aggregate_t_interval_matches_scipy():
  vals = [0.41, 0.52, 0.33, 0.60, 0.47]
  folds = [{"pearson": v, "auroc_3": (math.nan if i == 2 else v)}
           for i, v in enumerate(vals)]
  agg = metrics.aggregate(folds)
  lo, hi = stats.t.interval(0.95, 4, loc=np.mean(vals), scale=stats.sem(vals))
  assert agg["pearson"]["mean"] == pytest.approx(np.mean(vals), abs=TOL)
  assert agg["pearson"]["ci95"] == pytest.approx((hi - lo) / 2, abs=TOL)
  assert agg["pearson"]["ci95"] == pytest.approx(
      2.776 * np.std(vals, ddof=1) / np.sqrt(5), abs=1e-3)
  assert agg["auroc_3"]["k"] == 4 and agg["auroc_3"]["values"][2] is None
  assert math.isnan(metrics.t_halfwidth([0.5]))
