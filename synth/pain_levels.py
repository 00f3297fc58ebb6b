"""Pain-expression sampler: AU vectors with a chosen PSPI distribution.

Two steps per expression: draw a PSPI level from the chosen distribution,
then draw uniformly among *all* AU vectors that reach exactly that level
(AU4, AU6, AU7, AU9, AU10 in 0..5 and AU43 in 0..1: 15,552 vectors, 0..16).
Uniform over decompositions keeps the AUs' joint statistics free of any
hand-made pattern (PSPI 1 has 8 decompositions, PSPI 10 has 2,246, PSPI 16
has 121), and AUs outside the PSPI maxima (the smaller of AU6/AU7 and of
AU9/AU10) still vary, as in the released labels.

Distributions (reference.md §A.3 / §E.4):
  'uniform'     PSPI i.i.d. uniform over the levels of `pspi_range` (default;
                the release's split file is named "uniform_data").
  'stratified'  levels drawn without replacement (cycling when n exceeds the
                number of levels), so one identity's expressions spread over
                distinct levels.
  'paper_like'  uniform over 4..14 (intersected with `pspi_range`), the span
                of PSPI observed in the released annotations.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from synth import records

DISTRIBUTIONS = ("uniform", "stratified", "paper_like")
PAPER_LIKE_RANGE = (4, 14)
MAX_PSPI = 16


@functools.cache
def au_vectors_by_pspi() -> dict[int, np.ndarray]:
  """Every valid AU vector grouped by its PSPI: level -> (M, 6) int64."""
  ranges = [range(6)] * 5 + [range(2)]
  allv = np.array(list(itertools.product(*ranges)), np.int64)
  levels = records.pspi(allv)
  out = {int(p): allv[levels == p] for p in np.unique(levels)}
  for v in out.values():
    v.flags.writeable = False
  return out


def pspi_levels(distribution: str = "uniform",
                pspi_range: tuple[int, int] = (1, MAX_PSPI)) -> np.ndarray:
  """The PSPI levels a distribution can produce (its support), ascending."""
  lo, hi = _check_range(pspi_range)
  if distribution == "paper_like":
    lo, hi = max(lo, PAPER_LIKE_RANGE[0]), min(hi, PAPER_LIKE_RANGE[1])
    if lo > hi:
      raise ValueError(f"pspi_range {pspi_range} does not overlap the "
                       f"paper_like range {PAPER_LIKE_RANGE}")
  elif distribution not in DISTRIBUTIONS:
    raise ValueError(f"unknown PSPI distribution {distribution!r}; choose "
                     f"one of {DISTRIBUTIONS}")
  return np.arange(lo, hi + 1)


def sample_pain_aus(
    rng: np.random.Generator,
    n: int = records.NUM_PAIN_EXPRESSIONS,
    distribution: str = "uniform",
    pspi_range: tuple[int, int] = (1, MAX_PSPI),
) -> np.ndarray:
  """Draws `n` pain AU vectors.

  Args:
    rng: the identity's generator (keeps generation deterministic).
    n: number of expressions.
    distribution: 'uniform', 'stratified' or 'paper_like' (module doc).
    pspi_range: inclusive (low, high) PSPI levels, within 0..16.

  Returns:
    (n, 6) int64 AU intensities in records.AU_NAMES order.

  Raises:
    ValueError: bad distribution, range or n.
  """
  if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
    raise ValueError(f"n must be a non-negative integer, got {n!r}")
  levels = pspi_levels(distribution, pspi_range)
  if distribution == "stratified":
    reps = -(-n // len(levels))
    chosen = np.concatenate([rng.permutation(levels) for _ in range(reps)])
    chosen = chosen[:n]
  else:
    chosen = rng.choice(levels, size=n)
  table = au_vectors_by_pspi()
  out = np.empty((n, len(records.AU_NAMES)), np.int64)
  for i, p in enumerate(chosen):
    options = table[int(p)]
    out[i] = options[rng.integers(len(options))]
  return out


def _check_range(pspi_range) -> tuple[int, int]:
  try:
    lo, hi = (int(v) for v in pspi_range)
    ok = all(float(v).is_integer() for v in pspi_range)
  except (TypeError, ValueError):
    ok = False
  if not ok or not 0 <= lo <= hi <= MAX_PSPI:
    raise ValueError(f"pspi_range must be integers (low, high) with "
                     f"0 <= low <= high <= {MAX_PSPI}, got {pspi_range!r}")
  return lo, hi
