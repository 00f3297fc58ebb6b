"""Is one method better than another? Paired differences with intervals.

Two methods scored on the same held-out segments differ by far less than
the segments differ from each other (a near-zero responder scores badly
under every method), so comparing two means with their own spreads hides
a real difference and ranks noise. Here the unit is the segment: each
method's per-segment score (`per_segment`), the difference between two
methods on every segment, signed so that a positive advantage means the
first method is better, and a bootstrap interval around its mean.

Over several seeds the training seed adds its own variance (a second
training run of the same recipe is another model), so `over_seeds`
resamples seeds first and segments within each drawn seed second (a
two-level bootstrap): its interval includes 0 unless the advantage holds
across training runs, not only across the segments of one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from jaxpain.temporal import metrics

# The metrics compared segment by segment, with their direction.
COMPARED = ("PainCorr", "PainSim", "PainDist")


def per_segment(gen: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
  """Per-segment scores (N,), each the mean over the S samples.

  Their means over segments are `metrics.compute`'s values.

  Args:
    gen: (S, N, T, K) generated AU intensities.
    gt: (N, T, K) ground truth.
  """
  return {m: v.mean(0) for m, v in metrics.sample_scores(gen, gt).items()}


def advantage(ours: np.ndarray, other: np.ndarray, metric: str
              ) -> np.ndarray:
  """Per-segment advantage of `ours` over `other`: > 0 where ours is
  better (higher PainCorr, lower PainSim / PainDist)."""
  ours, other = np.asarray(ours, np.float64), np.asarray(other, np.float64)
  if ours.shape != other.shape or ours.ndim != 1 or not ours.size:
    raise ValueError(f"{metric}: per-segment scores of shapes {ours.shape} "
                     f"and {other.shape}; both must be (N,) on the same "
                     "segments")
  if not (np.isfinite(ours).all() and np.isfinite(other).all()):
    raise ValueError(f"{metric}: a per-segment score is NaN or infinite")
  higher = metrics.HIGHER_IS_BETTER.get(metric)
  if higher is None:
    raise ValueError(f"{metric} has no better direction; compare one of "
                     f"{COMPARED}")
  return ours - other if higher else other - ours


def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
  tail = 100 * (1 - level) / 2
  lo, hi = np.percentile(draws, [tail, 100 - tail])
  return float(lo), float(hi)


def summarise(adv: np.ndarray, rounds: int = 2000, level: float = 0.95,
              seed: int = 0) -> dict[str, float]:
  """Mean advantage over one set of segments, its bootstrap interval
  (segments resampled with replacement) and the share of segments on
  which ours is better."""
  adv = np.asarray(adv, np.float64)
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, adv.size, size=(rounds, adv.size))
  lo, hi = _interval(adv[idx].mean(1), level)
  return {"mean": float(adv.mean()), "lo": lo, "hi": hi,
          "better": float((adv > 0).mean()), "segments": int(adv.size)}


def over_seeds(advs: Sequence[np.ndarray], rounds: int = 2000,
               level: float = 0.95, seed: int = 0) -> dict[str, float]:
  """Mean over seeds of each seed's mean advantage, with a two-level
  bootstrap interval (seeds, then segments within each drawn seed)."""
  advs = [np.asarray(a, np.float64) for a in advs]
  if not advs:
    raise ValueError("no seeds to compare")
  rng = np.random.default_rng(seed)
  k = len(advs)
  draws = np.empty(rounds)
  for r in range(rounds):
    picked = rng.integers(0, k, size=k)
    draws[r] = np.mean([advs[s][rng.integers(0, advs[s].size,
                                             advs[s].size)].mean()
                        for s in picked])
  lo, hi = _interval(draws, level)
  means = np.array([a.mean() for a in advs])
  return {"mean": float(means.mean()), "lo": lo, "hi": hi,
          "seeds_better": int((means > 0).sum()), "seeds": k}


def compare(per_seed: Sequence[Mapping[str, Mapping[str, np.ndarray]]],
            ours: str, rounds: int = 2000, seed: int = 0) -> dict:
  """Ours against every other method, per metric, per seed and pooled.

  Args:
    per_seed: [{method: {metric: (N,) per-segment scores}}], one per seed.
    ours: the method compared against the others.

  Returns:
    {other: {metric: {'per_seed': [summarise(...)], 'pooled':
    over_seeds(...)}}}.
  """
  out: dict = {}
  for other in per_seed[0]:
    if other == ours:
      continue
    out[other] = {}
    for m in COMPARED:
      advs = [advantage(s[ours][m], s[other][m], m) for s in per_seed]
      out[other][m] = {
          "per_seed": [summarise(a, rounds, seed=seed + i)
                       for i, a in enumerate(advs)],
          "pooled": over_seeds(advs, rounds, seed=seed)}
  return out


def table(comparison: Mapping, metric_names: Sequence[str] = COMPARED
          ) -> str:
  """Markdown: pooled advantage [95% interval] and seeds on which ours is
  ahead, one row per other method."""
  head = ("| ours against | " + " | ".join(
      f"{m} advantage [95%], seeds ahead" for m in metric_names) + " |")
  lines = [head, "|---" * (len(metric_names) + 1) + "|"]
  for other, per_metric in comparison.items():
    cells = []
    for m in metric_names:
      p = per_metric[m]["pooled"]
      cells.append(f"{p['mean']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}], "
                   f"{p['seeds_better']}/{p['seeds']}")
    lines.append(f"| {other} | " + " | ".join(cells) + " |")
  return "\n".join(lines)
