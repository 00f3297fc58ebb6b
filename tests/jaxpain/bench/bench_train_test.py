"""scripts/bench_train.py: argument checks and a smoke run.

The smoke run trains a tiny ViTPain on both sides (2 timed steps per phase)
and checks that the report has every field a reader of docs/benchmarks.md
relies on, and that every figure is finite or explicitly absent (None). It
asserts no speed and no clock advance: timing belongs to the script.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from jaxpain.bench import report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SCRIPT = os.path.join(ROOT, 'scripts', 'bench_train.py')


def _load():
  spec = importlib.util.spec_from_file_location('bench_train', SCRIPT)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


bench = _load()


def test_too_few_steps_need_the_explicit_flag(capsys):
  with pytest.raises(SystemExit):
    bench.parse_args(['--steps', '10'])
  assert '--allow-few-steps' in capsys.readouterr().err
  a = bench.parse_args(['--steps', '10', '--allow-few-steps'])
  assert a.e2e_steps == a.eval_steps == 10


def test_cudnn_attention_is_refused_on_cpu(capsys):
  with pytest.raises(SystemExit):
    bench.parse_args(['--attention', 'cudnn'])
  assert 'needs --device gpu' in capsys.readouterr().err


def _finite_or_absent(v) -> bool:
  if v is None:
    return True
  if isinstance(v, list):
    return all(_finite_or_absent(x) for x in v)
  return isinstance(v, (int, float)) and math.isfinite(v) and v >= 0


@pytest.mark.slow
def test_smoke_run_reports_every_field_for_both_sides(tmp_path):
  out = tmp_path / 'bench.json'
  cmd = [sys.executable, SCRIPT, '--variant', 'mu/16', '--image-size', '32',
         '--batch', '2', '--steps', '2', '--warmup', '1', '--rounds', '1',
         '--allow-few-steps', '--data', 'toy', '--workers', '0',
         '--no-augment', '--fast-compile', '--peak-gemm', '256',
         '--profile', str(tmp_path / 'prof'), '--profile-steps', '1',
         '--out', str(out)]
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rep = json.loads(out.read_text())
  assert set(rep['results']) == {'jax', 'torch'}
  for side, phases in rep['results'].items():
    assert set(phases) == {'train', 'e2e', 'eval'}, side
    for phase, r in phases.items():
      assert set(report.RESULT_FIELDS) <= set(r), (side, phase)
      assert r['steps'] == 2 and len(r['round_median_ms']) == 1
      assert r['step_ms_p10'] <= r['step_ms_median'] <= r['step_ms_p90']
      for k in report.RESULT_FIELDS:
        assert _finite_or_absent(r[k]), (side, phase, k, r[k])
      assert f'| {side} | {phase} |' in proc.stdout
  for phase in ('train', 'e2e', 'eval'):
    row = rep['ratios'][phase]
    assert {'jax / torch', 'jax / torch paired', 'jax / torch per CPU-s',
            'jax / torch paired p10-p90',
            'jax / torch paired per CPU-s'} == set(row)
    assert all(_finite_or_absent(v) for v in row.values()), row
  for side in ('jax', 'torch'):  # op profiles of the train phase
    prof = rep['profile'][side]
    assert 'gemm' in prof['categories'], prof['categories']
    assert _finite_or_absent(prof['op_ms_per_step'])
    shares = [v['share'] for v in prof['categories'].values()]
    assert all(s is None for s in shares) or sum(shares) == (
      pytest.approx(1.0))
  assert _finite_or_absent(rep['peak_flops'])
  assert 'measured' in rep['peak_source']
  assert rep['sides']['jax']['dtype'] in ('float32', 'bfloat16')
  assert rep['cpu']['model'] and rep['cpu']['cores'] >= 1
  for pkg in ('jax', 'jaxlib', 'flax', 'optax', 'grain', 'torch', 'timm',
              'peft'):
    assert rep['versions'][pkg], pkg
  assert rep['command'].startswith('scripts/bench_train.py')
  assert rep['date'] and set(rep['load_avg']) == {'train', 'e2e', 'eval'}
  assert {'start', 'end'} == set(rep['load'])
