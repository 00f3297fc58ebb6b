"""Timing and statistics of benchmark steps: medians, spread, paired ratios.

A shared, loaded machine makes single timings noisy, so every figure here is
robust: rates come from the median step, the spread is p10-p90, and speed
ratios between two sides are *paired*: the sides ran alternately, round by
round, and the median of the per-round ratios cancels the load both saw.
CPU time (all threads of the process) is reported next to wall time: it
counts the work done, not the time spent descheduled.

A rate whose time is zero (a step shorter than the clock's resolution) is
None, never infinite: a figure is finite or explicitly absent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

Step = tuple[float, float]  # (wall s, process CPU s) of one step


def timed(fn: Callable[[], object], n: int) -> list[Step]:
  """(wall s, process CPU s) of each of n calls of `fn`."""
  out = []
  for _ in range(n):
    t, c = time.perf_counter(), time.process_time()
    fn()
    out.append((time.perf_counter() - t, time.process_time() - c))
  return out


def quantile(values: Sequence[float], q: float) -> float:
  """Linear-interpolated quantile (numpy's default), q in [0, 1]."""
  if not values:
    raise ValueError('quantile of no values')
  v = sorted(values)
  pos = q * (len(v) - 1)
  lo = math.floor(pos)
  hi = min(lo + 1, len(v) - 1)
  return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
  return quantile(values, 0.5)


def rate(count: float, seconds: float) -> float | None:
  """count / seconds; None where seconds is not positive and finite."""
  if not math.isfinite(seconds) or seconds <= 0:
    return None
  return count / seconds


def summarize(steps: Sequence[Step], batch: int) -> dict:
  """Median-based rate, spread and CPU time of timed steps.

  Args:
    steps: (wall s, CPU s) per step.
    batch: samples per step.

  Returns:
    steps, samples_per_s (from the median step), samples_per_s_mean,
    step_ms_median / _p10 / _p90, cpu_s_per_step_median and
    samples_per_cpu_s (None where a time is zero).
  """
  wall = [w for w, _ in steps]
  cpu = median([c for _, c in steps])
  med = median(wall)
  return {
    'steps': len(wall), 'samples_per_s': rate(batch, med),
    'samples_per_s_mean': rate(batch * len(wall), sum(wall)),
    'step_ms_median': 1e3 * med, 'step_ms_p10': 1e3 * quantile(wall, 0.1),
    'step_ms_p90': 1e3 * quantile(wall, 0.9), 'cpu_s_per_step_median': cpu,
    'samples_per_cpu_s': rate(batch, cpu)}


def split_rounds(total: int, rounds: int) -> list[int]:
  """`total` steps in `rounds` near-equal rounds (at least one step each)."""
  k = max(1, min(rounds, total))
  return [total // k + (i < total % k) for i in range(k)]


def round_median(steps: Sequence[Step]) -> tuple[float, float]:
  """(median wall ms, median CPU ms) of one round's steps."""
  return (1e3 * median([w for w, _ in steps]),
          1e3 * median([c for _, c in steps]))


def ratio(num: float | None, den: float | None) -> float | None:
  """num / den, or None where either is absent or den is zero."""
  if num is None or den is None or den == 0:
    return None
  return num / den


def paired(side_ms: Sequence[float], base_ms: Sequence[float]) -> dict:
  """Speed of a side over a base from per-round step times of both.

  Round i of both sides ran back to back, so base_ms[i] / side_ms[i] is
  that round's speed ratio under the same load. Returns its median and
  p10-p90 (None where a round time is zero).
  """
  if len(side_ms) != len(base_ms):
    raise ValueError(f'{len(side_ms)} rounds against {len(base_ms)}')
  per = [ratio(b, s) for s, b in zip(side_ms, base_ms, strict=True)]
  if not per or any(p is None for p in per):
    return {'median': None, 'p10': None, 'p90': None}
  return {'median': median(per), 'p10': quantile(per, 0.1),
          'p90': quantile(per, 0.9)}


def ratios(results: dict, sides: Sequence[str], phases: Sequence[str]
           ) -> dict:
  """Speed ratios of every side over the first torch and first jax side.

  Args:
    results: side -> phase -> `summarize` dict plus 'round_median_ms' and
      'round_cpu_ms' (per-round medians, same rounds for every side).
    sides: side names in order; the first 'torch...' is the baseline, the
      first 'jax...' the reference for JAX-only levers.
    phases: phases to compare.

  Returns:
    phase -> {'<side> / <base>': samples/s ratio, '... paired': median of
    per-round ratios, '... paired p10-p90': [p10, p90], '... per CPU-s':
    ratio of samples per CPU second, '... paired per CPU-s': median of
    per-round CPU-time ratios, '<jax side> / <jax ref>' (plain, paired,
    per CPU-s): a lever against the default JAX side}.
  """
  base = next((s for s in sides if s.startswith('torch')), None)
  ref = next((s for s in sides if s.startswith('jax')), None)
  out = {}
  for phase in phases:
    row = {}
    for s in sides:
      r = results[s][phase]
      if base and s != base:
        b = results[base][phase]
        key = f'{s} / {base}'
        row[key] = ratio(r['samples_per_s'], b['samples_per_s'])
        wall = paired(r['round_median_ms'], b['round_median_ms'])
        row[f'{key} paired'] = wall['median']
        row[f'{key} paired p10-p90'] = [wall['p10'], wall['p90']]
        row[f'{key} per CPU-s'] = ratio(r['samples_per_cpu_s'],
                                        b['samples_per_cpu_s'])
        row[f'{key} paired per CPU-s'] = paired(
          r['round_cpu_ms'], b['round_cpu_ms'])['median']
      if ref and s != ref and s.startswith('jax'):
        f = results[ref][phase]
        row[f'{s} / {ref}'] = ratio(r['samples_per_s'], f['samples_per_s'])
        row[f'{s} / {ref} paired'] = paired(
          r['round_median_ms'], f['round_median_ms'])['median']
        row[f'{s} / {ref} per CPU-s'] = ratio(r['samples_per_cpu_s'],
                                              f['samples_per_cpu_s'])
    out[phase] = row
  return out
