"""Runs in separate processes: SIGKILL + resume, and 2 processes x 4 devices.

Each case starts fresh Python processes (as a preempted job or a multi-host
launch would). They share a persistent compilation cache, so the repeated
programs compile once.
"""

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

RUNNER = os.path.join(os.path.dirname(__file__), "run_tiny.py")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  e = dict(os.environ)
  e["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_cache"))
  e["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  e["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
  return e


def _start(env, workdir, *extra):
  return subprocess.Popen(
      [sys.executable, RUNNER, str(workdir), *extra], env=env,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=600):
  out, _ = proc.communicate(timeout=timeout)
  return proc.returncode, out


def _batches(workdir):
  """Records per step, the LAST occurrence (re-logged after a resume)."""
  seen = {}
  for line in open(os.path.join(workdir, "batches.jsonl")):
    r = json.loads(line)
    seen[r["step"]] = r["record"]
  return [seen[k] for k in sorted(seen)]


def _losses(workdir):
  seen = {}
  for line in open(os.path.join(workdir, "metrics.jsonl")):
    r = json.loads(line)
    if r["split"] == "train":
      seen[r["step"]] = r["loss"]
  return [seen[k] for k in sorted(seen)]


def test_sigkill_then_resume_equals_an_uninterrupted_run(env, tmp_path):
  whole, broken = tmp_path / "whole", tmp_path / "broken"
  code, out = _finish(_start(env, whole, "--steps", "9"))
  assert code == 0, out[-3000:]
  code, out = _finish(_start(env, broken, "--steps", "9", "--kill_at", "7"))
  assert code == -signal.SIGKILL, out[-3000:]
  assert not os.path.exists(broken / "params_0.npz")
  code, out = _finish(_start(env, broken, "--steps", "9"))
  assert code == 0, out[-3000:]
  assert "resumed from step" in out
  assert _batches(broken) == _batches(whole)
  a, b = np.load(whole / "params_0.npz"), np.load(broken / "params_0.npz")
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_allclose(b[k], a[k], rtol=1e-6, atol=1e-6, err_msg=k)


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_match_one_process(env, tmp_path):
  one = tmp_path / "one"
  code, out = _finish(_start(env, one, "--steps", "4", "--mesh", "2,2,2"))
  assert code == 0, out[-3000:]
  two = tmp_path / "two"
  addr = f"localhost:{_free_port()}"
  procs = [_start(env, two, "--steps", "4", "--mesh", "2,2,2", "--devices",
                  "4", "--coordinator", addr, "--num_processes", "2",
                  "--process_id", str(i)) for i in range(2)]
  results = [_finish(p) for p in procs]
  for code, out in results:
    assert code == 0, out[-3000:]
  np.testing.assert_allclose(_losses(two), _losses(one), rtol=1e-5)
  assert len(_losses(one)) == 4
  a = np.load(one / "params_0.npz")
  for pid in range(2):
    b = np.load(two / f"params_{pid}.npz")
    for k in a:
      np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6)
