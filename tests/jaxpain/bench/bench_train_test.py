"""scripts/bench_train.py: FLOP counting, flag checks, and a smoke run.

The smoke run trains a tiny ViTPain on both sides (2 timed steps per phase)
and checks that the report has every field a reader of docs/benchmarks.md
relies on. It asserts no speed: timing belongs to the script itself.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SCRIPT = os.path.join(ROOT, 'scripts', 'bench_train.py')


def _load():
  spec = importlib.util.spec_from_file_location('bench_train', SCRIPT)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


bench = _load()


@pytest.mark.parametrize('variant,dinov3,train,eval_', [
  ('B/16', False, 147e9, 71.7e9),  # performance.md §3, N = 197
  ('L/16', False, 508e9, 249.0e9),
  ('B/16', True, 150e9, None),  # N = 201 (RoPE + 4 registers)
  ('L/16', True, 519e9, None),
])
def test_flops_match_the_derived_table(variant, dinov3, train, eval_):
  got = bench.flops_per_pair(variant, 224, 8, True, dinov3, train=True)
  assert got == pytest.approx(train, rel=0.01)
  if eval_ is not None:
    fwd = bench.flops_per_pair(variant, 224, 8, True, dinov3, train=False)
    assert fwd == pytest.approx(eval_, rel=0.01)


def test_flops_without_neutral_are_about_half():
  both = bench.flops_per_pair('S/16', 224, 8, True)
  one = bench.flops_per_pair('S/16', 224, 8, False)
  assert 0.45 < one / both < 0.5  # no second tower, no cross-attention


def test_side_overrides_parse_and_bad_ones_name_the_problem():
  assert bench.parse_side('jax+shared_base=0+dtype=bfloat16') == (
    'jax', {'shared_base': '0', 'dtype': 'bfloat16'})
  assert bench.parse_side('jax+scan=0') == ('jax', {'scan': '0'})
  with pytest.raises(SystemExit, match='accepts'):
    bench.parse_side('torch+remat=1')
  with pytest.raises(SystemExit, match='unknown side'):
    bench.parse_side('tf')


def test_too_few_steps_need_the_explicit_flag(capsys):
  with pytest.raises(SystemExit):
    bench.parse_args(['--steps', '10'])
  assert '--allow-few-steps' in capsys.readouterr().err
  a = bench.parse_args(['--steps', '10', '--allow-few-steps'])
  assert a.e2e_steps == a.eval_steps == 10


FIELDS = {'steps', 'samples_per_s', 'samples_per_s_mean', 'step_ms_median',
          'step_ms_p10', 'step_ms_p90', 'mfu', 'first_step_s',
          'flops_per_sample', 'peak_rss_bytes', 'device_peak_bytes',
          'cpu_s_per_step_median', 'samples_per_cpu_s', 'round_median_ms'}


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
      assert FIELDS <= set(r), (side, phase, FIELDS - set(r))
      assert r['steps'] == 2
      assert r['step_ms_p10'] <= r['step_ms_median'] <= r['step_ms_p90']
      assert r['samples_per_s'] > 0 and math.isfinite(r['mfu'])
      assert r['peak_rss_bytes'] > 0
      assert f'| {side} | {phase} |' in proc.stdout
  for phase in ('train', 'e2e', 'eval'):
    assert rep['ratios'][phase]['jax / torch'] > 0
    row = rep['ratios'][phase]
    assert row['jax / torch paired'] > 0 and row['jax / torch per CPU-s'] > 0
    lo, hi = row['jax / torch paired p10-p90']
    assert lo <= row['jax / torch paired'] <= hi
  for side in ('jax', 'torch'):  # op profiles of the train phase
    prof = rep['profile'][side]
    assert 'gemm' in prof['categories'] and prof['op_ms_per_step'] > 0
    assert sum(v['share'] for v in prof['categories'].values()) == (
      pytest.approx(1.0))
  assert rep['peak_flops'] > 0 and 'measured' in rep['peak_source']
  assert rep['sides']['jax']['dtype'] in ('float32', 'bfloat16')
  assert rep['cpu']['model'] and rep['cpu']['cores'] >= 1
  for pkg in ('jax', 'jaxlib', 'flax', 'optax', 'grain', 'torch', 'timm',
              'peft'):
    assert rep['versions'][pkg], pkg
  assert rep['command'].startswith('scripts/bench_train.py')
  assert rep['date'] and set(rep['load_avg']) == {'train', 'e2e', 'eval'}
