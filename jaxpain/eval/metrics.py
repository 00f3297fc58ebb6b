"""Pain metrics: regression, ranking, train-calibrated F1, cross-fold summary.

These follow the UNBC-McMaster protocol of the released code
(reference.md §C), written in numpy so that they are exact, fast on 50k
frames and free of TensorFlow / torchmetrics:

- MAE and Pearson r on PSPI (r is 0 when undefined, as in the released
  evaluation, so that a collapsed model scores 0 instead of crashing);
- AUROC at PSPI >= t on the *continuous* prediction (Mann-Whitney with
  average ranks, so ties count one half, which is what scikit-learn's
  trapezoid integration gives);
- train-calibrated F1: the decision threshold tau is searched on the TRAIN
  predictions of the fold, then applied to the test fold, so the test labels
  never choose their own threshold;
- mean over folds with a t-based 95% confidence half-width.

Every function takes PSPI in its natural 0..16 units.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

from synth import records

THRESHOLDS: tuple[int, ...] = (1, 2, 3)
# The released calibration grid (threshold_calibration.py): 200 values in
# [0, 6]. Predictions above 6 all count as positive at every grid value, so
# the grid covers the clinically interesting low-PSPI range only.
TAU_GRID: np.ndarray = np.linspace(0.0, 6.0, 200)
AU_NAMES = records.AU_NAMES


def _vec(x, name: str) -> np.ndarray:
  a = np.asarray(x, dtype=np.float64).reshape(-1)
  if not np.all(np.isfinite(a)):
    bad = int(np.sum(~np.isfinite(a)))
    raise ValueError(
        f"{name} holds {bad} NaN/inf value(s) of {a.size}; metrics need "
        "finite inputs (clean the labels or check the model for overflow)"
    )
  return a


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
  t, p = _vec(y_true, "y_true"), _vec(y_pred, "y_pred")
  if t.shape != p.shape:
    raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
  return t, p


def mae(y_true, y_pred) -> float:
  """Mean absolute error; NaN for empty input."""
  t, p = _pair(y_true, y_pred)
  return float(np.mean(np.abs(t - p))) if t.size else math.nan


def pearson_r(y_true, y_pred) -> float:
  """Pearson correlation, 0.0 when undefined (n < 2 or a constant input).

  The released evaluation reports 0 for a degenerate fold rather than NaN;
  we keep that so a model that predicts a constant is scored as useless,
  not dropped from the mean.
  """
  t, p = _pair(y_true, y_pred)
  if t.size < 2:
    return 0.0
  dt, dp = t - t.mean(), p - p.mean()
  den = math.sqrt(float(np.dot(dt, dt)) * float(np.dot(dp, dp)))
  if den == 0.0:
    return 0.0
  return float(np.clip(np.dot(dt, dp) / den, -1.0, 1.0))


def auroc(labels, scores) -> float:
  """Area under the ROC curve of binary `labels` ranked by `scores`.

  Ties between a positive and a negative count one half (average ranks).

  Returns:
    The AUROC, or NaN when `labels` hold a single class (undefined; the
    released code writes 0.0 there, which drags the fold mean down).
  """
  y, s = _pair(labels, scores)
  pos = y > 0
  n_pos, n_neg = int(pos.sum()), int((~pos).sum())
  if n_pos == 0 or n_neg == 0:
    return math.nan
  ranks = stats.rankdata(s, method="average")
  u = float(ranks[pos].sum()) - n_pos * (n_pos + 1) / 2.0
  return u / (n_pos * n_neg)


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray]:
  """False- and true-positive rates at every distinct score, for plots."""
  y, s = _pair(labels, scores)
  order = np.argsort(-s, kind="stable")
  y, s = y[order] > 0, s[order]
  last = np.r_[np.nonzero(np.diff(s))[0], y.size - 1]
  tps = np.cumsum(y)[last]
  fps = (last + 1) - tps
  tpr = np.r_[0.0, tps / max(int(y.sum()), 1)]
  fpr = np.r_[0.0, fps / max(int((~y).sum()), 1)]
  return fpr, tpr


def prf(true_bin, pred_bin) -> tuple[float, float, float]:
  """(F1, precision, recall) of binary predictions; 0 where undefined."""
  t = np.asarray(true_bin, dtype=bool).reshape(-1)
  p = np.asarray(pred_bin, dtype=bool).reshape(-1)
  tp = int(np.sum(t & p))
  n_true, n_pred = int(t.sum()), int(p.sum())
  f1 = 2.0 * tp / (n_true + n_pred) if n_true + n_pred else 0.0
  precision = tp / n_pred if n_pred else 0.0
  recall = tp / n_true if n_true else 0.0
  return f1, precision, recall


def f1_over_grid(true_bin, scores, grid=TAU_GRID) -> np.ndarray:
  """F1 of `scores >= tau` for every tau of `grid`, in O(N log N).

  Sorting once and counting with searchsorted replaces the released
  200-pass loop; values are identical because each count is exact.
  """
  t = np.asarray(true_bin, dtype=bool).reshape(-1)
  s = np.asarray(scores, dtype=np.float64).reshape(-1)
  grid = np.asarray(grid, dtype=np.float64)
  all_sorted, pos_sorted = np.sort(s), np.sort(s[t])
  n_pred = s.size - np.searchsorted(all_sorted, grid, side="left")
  tp = pos_sorted.size - np.searchsorted(pos_sorted, grid, side="left")
  den = (t.sum() + n_pred).astype(np.float64)
  return np.divide(2.0 * tp, den, out=np.zeros_like(den), where=den > 0)


def calibrate_threshold(true_bin, scores, grid=TAU_GRID) -> tuple[float, float]:
  """The tau of `grid` maximising F1 of `scores >= tau`; the first max wins.

  Returns:
    (tau, F1 at tau). Ties resolve to the smallest tau, as in the released
    loop, which only replaced its best on a strictly greater F1.
  """
  f1 = f1_over_grid(true_bin, scores, grid)
  best = int(np.argmax(f1))
  return float(np.asarray(grid)[best]), float(f1[best])


def train_calibrated_f1(
    train_true,
    train_pred,
    test_true,
    test_pred,
    thresholds: Sequence[float] = THRESHOLDS,
    grid=TAU_GRID,
) -> dict[str, float]:
  """F1 at PSPI >= t on TEST with the decision threshold chosen on TRAIN.

  A threshold t whose train labels are single-class cannot be calibrated:
  it reports F1 = 0 (as the released code does) and is left out of the
  macro mean, so `f1_macro` averages only the calibrated thresholds.

  Returns:
    Keys `f1_t`, `precision_t`, `recall_t`, `tau_t`, `calibrated_t` (1.0 or
    0.0) for each t, and `f1_macro` (NaN if no threshold was calibrated).
  """
  tr_t, tr_p = _pair(train_true, train_pred)
  te_t, te_p = _pair(test_true, test_pred)
  out: dict[str, float] = {}
  used = []
  for t in thresholds:
    k = _tkey(t)
    tr_bin = tr_t >= t
    if tr_bin.all() or not tr_bin.any():
      out.update({f"f1_{k}": 0.0, f"precision_{k}": 0.0, f"recall_{k}": 0.0,
                  f"tau_{k}": math.nan, f"calibrated_{k}": 0.0})
      continue
    tau, _ = calibrate_threshold(tr_bin, tr_p, grid)
    f1, precision, recall = prf(te_t >= t, te_p >= tau)
    out.update({f"f1_{k}": f1, f"precision_{k}": precision,
                f"recall_{k}": recall, f"tau_{k}": tau, f"calibrated_{k}": 1.0})
    used.append(f1)
  out["f1_macro"] = float(np.mean(used)) if used else math.nan
  return out


def _tkey(t: float) -> str:
  return str(int(t)) if float(t).is_integer() else str(t)


def au_mae(au_true, au_pred, names: Sequence[str] = AU_NAMES) -> dict:
  """Mean absolute error of each AU, keyed `mae_<AU name>`."""
  t = np.asarray(au_true, dtype=np.float64)
  p = np.asarray(au_pred, dtype=np.float64)
  if t.shape != p.shape or t.ndim != 2 or t.shape[1] != len(names):
    raise ValueError(
        f"AU arrays must both be (N, {len(names)}); got {t.shape} and "
        f"{p.shape}"
    )
  err = np.abs(t - p).mean(axis=0) if len(t) else np.full(len(names), np.nan)
  return {f"mae_{n}": float(e) for n, e in zip(names, err, strict=True)}


def au_pspi(au) -> np.ndarray:
  """PSPI implied by AU intensities: AU4 + max(AU6,AU7) + max(AU9,AU10) + AU43."""
  return records.pspi(np.asarray(au, dtype=np.float64))


def pspi_metrics(
    test_true,
    test_pred,
    train_true=None,
    train_pred=None,
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict[str, float]:
  """All PSPI metrics of one fold (or one split) as a flat dict.

  Args:
    test_true, test_pred: ground-truth and predicted PSPI of the test frames.
    train_true, train_pred: the same on the fold's TRAIN frames; without them
      the train-calibrated F1 is skipped.
    thresholds: PSPI cut-offs for AUROC and F1.

  Returns:
    `n`, `mae`, `pearson`, `auroc_t` for each t, and the keys of
    `train_calibrated_f1` when train predictions are given.
  """
  t, p = _pair(test_true, test_pred)
  out = {"n": float(t.size), "mae": mae(t, p), "pearson": pearson_r(t, p)}
  for thr in thresholds:
    out[f"auroc_{_tkey(thr)}"] = auroc(t >= thr, p)
  if train_true is not None and train_pred is not None:
    out.update(train_calibrated_f1(train_true, train_pred, t, p, thresholds))
  return out


def au_metrics(au_true, au_pred, pspi_true=None) -> dict[str, float]:
  """Per-AU MAE, plus MAE and r of the AU-derived PSPI against `pspi_true`."""
  out = au_mae(au_true, au_pred)
  out["mae_au_mean"] = float(np.mean(list(out.values())))
  if pspi_true is not None:
    derived = au_pspi(au_pred)
    out["au_pspi_mae"] = mae(pspi_true, derived)
    out["au_pspi_pearson"] = pearson_r(pspi_true, derived)
  return out


def t_halfwidth(values: Iterable[float], level: float = 0.95) -> float:
  """Half-width of the t-based CI of the mean: t_{(1+l)/2, k-1} s / sqrt(k).

  NaN for fewer than two values (no spread to estimate). With k = 5 folds
  the factor is 2.776, the released code's constant.
  """
  v = np.asarray(list(values), dtype=np.float64)
  k = v.size
  if k < 2:
    return math.nan
  tcrit = stats.t.ppf(0.5 + level / 2.0, k - 1)
  return float(tcrit * v.std(ddof=1) / math.sqrt(k))


def aggregate(per_fold: Sequence[Mapping[str, float]]) -> dict[str, dict]:
  """Mean and 95% CI half-width of every metric over folds.

  Non-finite fold values (an AUROC of a single-class fold, a macro F1 with
  nothing calibrated) are left out; `k` says how many folds each summary
  used, so a reader sees when a mean stands on fewer folds.

  Returns:
    {metric: {"mean", "ci95", "std", "k", "values"}}; `values` keeps every
    fold's raw value (None where non-finite) in fold order.
  """
  keys: list[str] = []
  for fold in per_fold:
    keys += [k for k in fold if k not in keys]
  out = {}
  for key in keys:
    raw = [fold.get(key, math.nan) for fold in per_fold]
    vals = np.asarray(raw, dtype=np.float64)
    fin = vals[np.isfinite(vals)]
    out[key] = {
        "mean": float(fin.mean()) if fin.size else math.nan,
        "ci95": t_halfwidth(fin),
        "std": float(fin.std(ddof=1)) if fin.size > 1 else math.nan,
        "k": int(fin.size),
        "values": [float(v) if np.isfinite(v) else None for v in vals],
    }
  return out
