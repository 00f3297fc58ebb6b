"""PainDiffusion's metrics, in AU space and without a detector (§G.5).

Inputs are S generated samples per ground-truth sequence: `gen` (S, N, T,
K) and `gt` (N, T, K) AU intensities, `stim` (N, T) the stimulus; PSPI is
the closed form of `synth.sequences.pspi`, so no AU detector (and no
render) sits between a sequence and its score.

  PainDist   mean squared AU error to the ground truth        (lower)
  PainDivrs  mean pairwise squared L2 between the S samples,
             / (T K)                                          (higher)
  PainVar    temporal variance of AU(t), mean over AUs        (near GT)
  PainCorr   Pearson r of PSPI(t) with the ground truth's;
             MEAN over samples (ours) and MAX over samples
             (what the released code reports), both then
             averaged over sequences                          (higher)
  PainSim    DTW between generated and true PSPI(t)           (lower)
  PainAcc    DTW between PSPI(t) and the stimulus, both
             z-normalised per curve (so the scale of the
             stimulus does not matter)                        (lower)
  jerk       mean |d^3 AU / dt^3| of the graded AUs (AU43 is
             binary: a step has no meaningful jerk), AU/s^3    (near GT)

DTW here: absolute difference per cell, steps (1,0), (0,1), (1,1), no
band, the total path cost divided by T (a per-frame cost, comparable
across lengths). A constant curve (the mean face) has no Pearson r; it
counts as r = 0.
"""

from __future__ import annotations

import numpy as np

from synth import sequences as sq

HIGHER_IS_BETTER = {"PainDist": False, "PainDivrs": True, "PainVar": None,
                    "PainCorr": True, "PainCorr_max": True,
                    "PainSim": False, "PainAcc": False, "jerk": None}


def dtw(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Batched DTW cost between curves a (..., T) and b (..., U), / T.

  Anti-diagonal wavefront: every cell of one diagonal depends only on the
  two previous diagonals, so each of the T + U - 1 steps is one vectorised
  numpy operation over the batch.
  """
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  a, b = np.broadcast_arrays(a[..., :, None], b[..., None, :])
  cost = np.abs(a - b)  # (..., T, U)
  t, u = cost.shape[-2:]
  inf = np.inf
  # acc[d][i]: accumulated cost of cell (i, d - i) on diagonal d.
  prev2 = np.full(cost.shape[:-2] + (t,), inf)
  prev1 = np.full(cost.shape[:-2] + (t,), inf)
  prev1[..., 0] = cost[..., 0, 0]
  rows = np.arange(t)
  for d in range(1, t + u - 1):
    i = rows
    j = d - i
    valid = (j >= 0) & (j < u)
    c = np.where(valid, cost[..., i, np.clip(j, 0, u - 1)], inf)
    up = prev1  # (i, j-1): same i on diagonal d-1
    left = np.concatenate([np.full(prev1.shape[:-1] + (1,), inf),
                           prev1[..., :-1]], -1)  # (i-1, j)
    diag = np.concatenate([np.full(prev2.shape[:-1] + (1,), inf),
                           prev2[..., :-1]], -1)  # (i-1, j-1)
    cur = c + np.minimum(np.minimum(up, left), diag)
    cur = np.where(valid, cur, inf)
    prev2, prev1 = prev1, cur
  return prev1[..., t - 1] / t


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Pearson r along the last axis; 0 where either curve is constant."""
  a = a - a.mean(-1, keepdims=True)
  b = b - b.mean(-1, keepdims=True)
  den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
  with np.errstate(invalid="ignore", divide="ignore"):
    r = (a * b).sum(-1) / den
  return np.where(den > 1e-9, r, 0.0)


def _znorm(x: np.ndarray) -> np.ndarray:
  sd = x.std(-1, keepdims=True)
  return (x - x.mean(-1, keepdims=True)) / np.where(sd > 1e-9, sd, 1.0)


def jerk(au: np.ndarray, fps: float = sq.FPS) -> float:
  """Mean |third difference| x fps^3 over time and the graded AUs."""
  graded = [i for i, a in enumerate(sq.SEQ_AUS) if a != "AU43"]
  d3 = np.diff(np.asarray(au, np.float64)[..., graded], n=3, axis=-2)
  return float(np.abs(d3).mean() * fps**3)


def temporal_variance(au: np.ndarray) -> float:
  return float(np.asarray(au, np.float64).var(-2).mean())


def diversity(gen: np.ndarray) -> float:
  """Mean pairwise squared L2 over samples (axis 0), / (T K)."""
  s = gen.shape[0]
  if s < 2:
    return 0.0
  g = np.asarray(gen, np.float64)
  total, pairs = 0.0, 0
  for i in range(s):
    for j in range(i + 1, s):
      total += np.square(g[i] - g[j]).sum(axis=(-2, -1)).mean()
      pairs += 1
  return float(total / pairs / (g.shape[-2] * g.shape[-1]))


def _check(gen: np.ndarray, gt: np.ndarray):
  gen, gt = np.asarray(gen, np.float64), np.asarray(gt, np.float64)
  if gen.ndim != 4 or gen.shape[1:] != gt.shape:
    raise ValueError(f"gen {gen.shape} must be (S, N, T, K) with (N, T, K) "
                     f"= gt {gt.shape}")
  return gen, gt


def sample_scores(gen: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
  """The scores against the ground truth per sample and sequence, (S, N):
  PainCorr (Pearson r), PainSim (DTW) and PainDist (MSE). `compute`
  averages them; `jaxpain.temporal.paired` compares methods on them."""
  gen, gt = _check(gen, gt)
  p_gen, p_gt = sq.pspi(gen), sq.pspi(gt)  # (S, N, T), (N, T)
  return {"PainCorr": pearson(p_gen, p_gt[None]),
          "PainSim": dtw(p_gen, p_gt[None]),
          "PainDist": np.square(gen - gt[None]).mean(axis=(2, 3))}


def compute(gen: np.ndarray, gt: np.ndarray, stim: np.ndarray,
            scores: dict[str, np.ndarray] | None = None
            ) -> dict[str, float]:
  """All metrics for S samples of N sequences (module docstring).

  Args:
    gen: (S, N, T, K) generated AU intensities.
    gt: (N, T, K) ground truth.
    stim: (N, T) stimulus.
    scores: `sample_scores(gen, gt)` when the caller has it already (the
      DTW is the costly part).

  Returns:
    {metric: value}.
  """
  gen, gt = _check(gen, gt)
  s = sample_scores(gen, gt) if scores is None else scores
  return {
      "PainDist": float(s["PainDist"].mean()),
      "PainDivrs": diversity(gen),
      "PainVar": temporal_variance(gen),
      "PainCorr": float(s["PainCorr"].mean()),
      "PainCorr_max": float(s["PainCorr"].max(0).mean()),
      "PainSim": float(s["PainSim"].mean()),
      "PainAcc": float(dtw(_znorm(sq.pspi(gen)),
                           _znorm(np.asarray(stim))[None]).mean()),
      "jerk": jerk(gen),
  }


def reference(gt: np.ndarray, stim: np.ndarray) -> dict[str, float]:
  """The ground truth's own PainVar, PainAcc and jerk (targets)."""
  gt = np.asarray(gt, np.float64)
  return {"PainVar": temporal_variance(gt),
          "PainAcc": float(dtw(_znorm(sq.pspi(gt)), _znorm(stim)).mean()),
          "jerk": jerk(gt)}
