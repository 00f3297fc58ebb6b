"""Runs in separate processes: SIGKILL + resume, and 2 processes x 4 devices.

One uninterrupted single-process run (mesh 2x2x2 on 8 devices) is the
reference of both: the resumed run must match it, and so must the same
run split over two processes of 4 devices each.

Each case starts fresh Python processes (as a preempted job or a multi-host
launch would). They inherit the session's persistent compilation cache and
XLA flags (tests/conftest.py), so the repeated programs compile once.
"""

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.limits import HANG_S

RUNNER = os.path.join(os.path.dirname(__file__), "run_tiny.py")


@pytest.fixture(scope="module")
def env():
  return dict(os.environ)  # the session's compilation cache and XLA flags


def _start(env, workdir, *extra):
  return subprocess.Popen(
      [sys.executable, RUNNER, str(workdir), *extra], env=env,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=HANG_S):
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


MESH = ("--mesh", "2,2,2")  # sharded state: restored and split by process


@pytest.fixture(scope="module")
def whole(env, tmp_path_factory):
  """One uninterrupted process on 8 devices: the reference of both tests."""
  workdir = tmp_path_factory.mktemp("whole")
  code, out = _finish(_start(env, workdir, "--steps", "9", *MESH))
  assert code == 0, out[-3000:]
  return workdir


def test_sigkill_then_resume_equals_an_uninterrupted_run(env, whole,
                                                         tmp_path):
  broken = tmp_path / "broken"
  code, out = _finish(_start(env, broken, "--steps", "9", *MESH,
                             "--kill_at", "7"))
  assert code == -signal.SIGKILL, out[-3000:]
  assert not os.path.exists(broken / "params_0.npz")
  code, out = _finish(_start(env, broken, "--steps", "9", *MESH))
  assert code == 0, out[-3000:]
  assert "resumed from step" in out
  assert '"torch_imported": false' in out  # tensorboardX imports it otherwise
  assert _batches(broken) == _batches(whole)
  a, b = np.load(whole / "params_0.npz"), np.load(broken / "params_0.npz")
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_allclose(b[k], a[k], rtol=1e-6, atol=1e-6, err_msg=k)


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_match_one_process(env, whole, tmp_path):
  two = tmp_path / "two"
  addr = f"localhost:{_free_port()}"
  procs = [_start(env, two, "--steps", "9", *MESH, "--devices", "4",
                  "--coordinator", addr, "--num_processes", "2",
                  "--process_id", str(i)) for i in range(2)]
  results = [_finish(p) for p in procs]
  for code, out in results:
    assert code == 0, out[-3000:]
  np.testing.assert_allclose(_losses(two), _losses(whole), rtol=1e-5)
  assert len(_losses(whole)) == 9
  a = np.load(whole / "params_0.npz")
  for pid in range(2):
    b = np.load(two / f"params_{pid}.npz")
    for k in a:
      np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6)
