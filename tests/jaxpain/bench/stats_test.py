"""jaxpain.bench.stats: medians, spread, rounds and paired ratios."""

import math

import numpy as np
import pytest

from jaxpain.bench import stats


def test_quantile_matches_numpy_linear_interpolation():
  v = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0]
  for q in (0.0, 0.1, 0.5, 0.9, 1.0):
    assert stats.quantile(v, q) == pytest.approx(np.percentile(v, 100 * q))
  with pytest.raises(ValueError, match='no values'):
    stats.quantile([], 0.5)


def test_summarize_rates_come_from_the_median_step():
  steps = [(0.5, 1.0), (2.0, 3.0), (1.0, 1.5), (1.0, 2.0), (9.0, 2.0)]
  s = stats.summarize(steps, batch=8)
  assert s['steps'] == 5
  assert s['step_ms_median'] == pytest.approx(1000.0)
  assert s['samples_per_s'] == pytest.approx(8.0)  # outlier 9 s ignored
  assert s['samples_per_s_mean'] == pytest.approx(8 * 5 / 13.5)
  assert s['step_ms_p10'] <= s['step_ms_median'] <= s['step_ms_p90']
  assert s['cpu_s_per_step_median'] == pytest.approx(2.0)
  assert s['samples_per_cpu_s'] == pytest.approx(4.0)


def test_a_zero_time_gives_an_absent_rate_not_infinity():
  s = stats.summarize([(0.0, 0.0), (0.0, 0.0), (0.0, 0.0)], batch=4)
  assert s['samples_per_s'] is None and s['samples_per_cpu_s'] is None
  assert s['samples_per_s_mean'] is None
  assert stats.rate(1.0, math.inf) is None
  assert stats.ratio(None, 2.0) is None and stats.ratio(2.0, 0.0) is None


def test_split_rounds_covers_every_step_once():
  assert stats.split_rounds(10, 3) == [4, 3, 3]
  assert stats.split_rounds(2, 5) == [1, 1]
  assert stats.split_rounds(7, 0) == [7]
  assert sum(stats.split_rounds(53, 50)) == 53


def test_round_median_is_wall_and_cpu_in_ms():
  assert stats.round_median([(0.1, 0.2), (0.3, 0.4), (0.2, 0.9)]) == (
    pytest.approx(200.0), pytest.approx(400.0))


def test_paired_ratio_pairs_rounds_not_sorted_values():
  # Load doubles both sides' times in round 2: the paired ratio stays 2
  # although the side's slowest round is slower than the base's fastest.
  side, base = [100.0, 200.0, 100.0], [200.0, 400.0, 200.0]
  p = stats.paired(side, base)
  assert p['median'] == pytest.approx(2.0)
  assert p['p10'] == p['p90'] == pytest.approx(2.0)
  with pytest.raises(ValueError, match='rounds'):
    stats.paired([1.0], [1.0, 2.0])
  assert stats.paired([0.0], [1.0])['median'] is None


def _res(rate, rounds, cpu_rate=None, cpu_rounds=None):
  return {'samples_per_s': rate, 'samples_per_cpu_s': cpu_rate or rate,
          'round_median_ms': rounds, 'round_cpu_ms': cpu_rounds or rounds}


def test_ratios_against_the_first_torch_and_first_jax_side():
  results = {
    'jax': {'train': _res(2.0, [100.0, 300.0], 1.0, [200.0, 200.0])},
    'torch': {'train': _res(1.0, [200.0, 600.0], 0.5, [400.0, 400.0])},
    'jax+scan=0': {'train': _res(1.0, [200.0, 600.0])},
  }
  row = stats.ratios(results, ['jax', 'torch', 'jax+scan=0'],
                     ['train'])['train']
  assert row['jax / torch'] == pytest.approx(2.0)
  assert row['jax / torch paired'] == pytest.approx(2.0)
  assert row['jax / torch paired p10-p90'] == [pytest.approx(2.0)] * 2
  assert row['jax / torch per CPU-s'] == pytest.approx(2.0)
  assert row['jax / torch paired per CPU-s'] == pytest.approx(2.0)
  assert row['jax+scan=0 / torch'] == pytest.approx(1.0)
  assert row['jax+scan=0 / jax'] == pytest.approx(0.5)
  assert row['jax+scan=0 / jax paired'] == pytest.approx(0.5)
  assert row['jax+scan=0 / jax per CPU-s'] == pytest.approx(1.0)
  assert 'torch / torch' not in row and 'jax / jax' not in row


def test_ratios_without_a_torch_side_compare_jax_sides_only():
  results = {'jax': {'eval': _res(4.0, [1.0])},
             'jax+remat=1': {'eval': _res(3.0, [1.0])}}
  row = stats.ratios(results, ['jax', 'jax+remat=1'], ['eval'])['eval']
  assert row == {'jax+remat=1 / jax': pytest.approx(0.75),
                 'jax+remat=1 / jax paired': pytest.approx(1.0),
                 'jax+remat=1 / jax per CPU-s': pytest.approx(0.75)}
