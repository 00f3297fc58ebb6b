"""jaxpain.bench.report: the Markdown tables and the JSON file."""

import json

import pytest

from jaxpain.bench import report, stats


def _result(rate, cpu):
  r = stats.summarize([(1 / rate, cpu)] * 3 if rate else [(0.0, 0.0)] * 3,
                      batch=1)
  r.update(round_median_ms=[1e3 / rate if rate else 0.0] * 2,
           round_cpu_ms=[1e3 * cpu] * 2, first_step_s=3.0,
           flops_per_sample=1e9, peak_rss_bytes=2 ** 30,
           device_peak_bytes=None,
           mfu=rate * 1e9 / 1e10 if rate else None)
  return r


def _report():
  results = {'jax': {'train': _result(2.0, 1.0)},
             'torch': {'train': _result(1.0, 1.0)},
             'jax+scan=0': {'train': _result(None, 0.0)}}
  return {'results': results,
          'ratios': stats.ratios(results, list(results), ['train']),
          'peak_flops': 1e10, 'peak_source': 'measured',
          'profile': {'jax': {'op_ms_per_step': 500.0, 'categories': {
            'gemm': {'ms_per_step': 400.0, 'share': 0.8},
            'elementwise/other': {'ms_per_step': 100.0, 'share': 0.2}}}},
          'load': {'start': {'load_avg': [1.5, 1, 1]},
                   'end': {'load_avg': [2.0, 1, 1]}}}


def test_table_has_a_row_per_side_and_phase_and_every_ratio():
  text = report.format_table(_report())
  assert '| jax | train | 2.00 | 500 | 500-500 | 3 | 20.0% | 1.00 |' in text
  assert '| torch | train | 1.00 |' in text and '1.00 GiB RSS' in text
  assert '| train | jax / torch | 2.00x |' in text
  assert '| train | jax / torch paired p10-p90 | 2.00x-2.00x |' in text
  assert '| train | jax / torch paired per CPU-s | 1.00x |' in text
  assert 'Profile of jax (train, op time 500 ms/step): gemm 400 ms' in text
  assert 'MFU peak: 10.0 GFLOP/s (measured)' in text
  assert 'Load average (1 min) 1.5 at the start, 2.0 at the end.' in text


def test_absent_figures_print_as_na_not_as_errors():
  text = report.format_table(_report())
  assert '| jax+scan=0 | train | n/a |' in text
  assert '| train | jax+scan=0 / torch | n/a |' in text
  assert '| train | jax+scan=0 / torch paired p10-p90 | n/a-n/a |' in text


def test_result_fields_are_what_stats_and_the_runner_write():
  r = _result(2.0, 1.0)
  assert set(report.RESULT_FIELDS) == set(r)


def test_json_written_whole(tmp_path):
  path = tmp_path / 'rep.json'
  report.write_json(_report(), str(path))
  assert json.loads(path.read_text())['peak_source'] == 'measured'
  assert not (tmp_path / 'rep.json.tmp').exists()


def test_summary_table_one_row_per_run_and_phase():
  rep = _report()
  rep['config'] = {'variant': 'S/16', 'batch': 8}
  text = report.summary_table([rep, dict(rep, config={'variant': 'B/16',
                                                      'batch': 4})])
  rows = [line for line in text.splitlines() if line.startswith('| ')][1:]
  assert len(rows) == 2
  assert rows[0].startswith('| S/16 | 8 | train | 2.0 | 1.0 | 2.00x '
                            '(2.00x-2.00x) | 1.00x | 20.0% / 10.0% |')
  assert rows[1].startswith('| B/16 | 4 | train |')


def test_summarize_files_reads_reports_and_names_a_bad_one(tmp_path):
  rep = dict(_report(), config={'variant': 'L/16', 'batch': 64})
  path = tmp_path / 'l16.json'
  report.write_json(rep, str(path))
  assert '| L/16 | 64 | train |' in report.summarize_files([str(path)])
  (tmp_path / 'bad.json').write_text('{')
  with pytest.raises(SystemExit, match='bad.json'):
    report.summarize_files([str(tmp_path / 'bad.json')])
