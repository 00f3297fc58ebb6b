"""scripts/bench_input.py: a smoke run of the input-pipeline benchmark.

Runs the script in a subprocess on a small fake release (64 px) and checks
that every setting is reported with consistent counts and a per-core rate.
It asserts no speed: timing belongs to the script itself.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SCRIPT = os.path.join(ROOT, 'scripts', 'bench_input.py')


def test_smoke_run_reports_every_setting(tmp_path):
  out = tmp_path / 'input.json'
  cmd = [sys.executable, SCRIPT, '--image-size', '64', '--batch', '4',
         '--batches', '3', '--warmup', '1', '--workers', '1',
         '--data-dir', str(tmp_path / 'data'), '--out', str(out)]
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                        timeout=300, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rep = json.loads(out.read_text())
  got = {(r['neutral_mode'], r['workers']) for r in rep['rows']}
  assert got == {('same_view', 0), ('random_view', 0), ('same_view', 1),
                 ('random_view', 1)}
  for r in rep['rows']:
    assert r['pairs'] == 12 and r['image_shape'] == [64, 64, 3]
    assert r['pairs_per_s'] > 0 and r['pairs_per_cpu_s'] > 0
  assert '| same_view | 0 |' in proc.stdout


def test_a_named_dataset_needs_its_folder():
  proc = subprocess.run([sys.executable, SCRIPT, '--data', '3dpain/small'],
                        capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert proc.returncode != 0
  assert '--data needs --data-dir' in proc.stderr


def test_a_dataset_that_is_not_there_is_named(tmp_path):
  proc = subprocess.run([sys.executable, SCRIPT, '--data', '3dpain/small',
                         '--data-dir', str(tmp_path / 'none')],
                        capture_output=True, text=True, cwd=ROOT, timeout=120,
                        env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  assert proc.returncode != 0
  assert "bench_input: cannot open dataset '3dpain/small'" in proc.stderr
  assert 'Traceback' not in proc.stderr
