"""The CLI on the real (tiny) ViTPain: teacher, then the distilled student."""

import json
import os
import subprocess
import sys

import pytest

from tests.limits import HANG_S

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def _cli(config, workdir, env):
  proc = subprocess.run(
      [sys.executable, "-m", "jaxpain.train", "--config", config,
       "--workdir", str(workdir)], cwd=ROOT, env=env, capture_output=True,
      text=True, timeout=HANG_S)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
  return json.load(open(os.path.join(workdir, "results.json")))


@pytest.fixture(scope="module")
def env():
  """The session's compilation cache; one device, as on a laptop."""
  e = dict(os.environ)
  e["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
  return e


def test_teacher_then_distilled_student_from_the_command_line(env, tmp_path):
  common = "runlocal,data=toy/10,steps=4,batch=8"
  teacher = _cli(f"configs/teacher.py:{common}", tmp_path / "t", env)
  assert teacher["status"] == "done" and teacher["step"] == 4
  student = _cli(f"configs/student_distill.py:{common},teacher={tmp_path}/t",
                 tmp_path / "s", env)
  assert student["status"] == "done"
  assert {"mae", "pearson_r"} <= set(student["test"])
  config = json.load(open(tmp_path / "s" / "config.json"))
  assert config["model"]["name"] == "vitpain"
  assert config["teacher"]["workdir"] == f"{tmp_path}/t"
  rows = [json.loads(x) for x in open(tmp_path / "s" / "metrics.jsonl")]
  assert any("distill_feature" in r for r in rows)
  for name in ("curves.png", "tensorboard", "checkpoints"):
    assert os.path.exists(tmp_path / "s" / name)


def test_student_distill_refuses_to_run_without_a_teacher(env, tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "jaxpain.train", "--config",
       "configs/student_distill.py:runlocal,data=toy/10", "--workdir",
       str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
      timeout=HANG_S)
  assert proc.returncode != 0
  assert "teacher=<teacher workdir>" in proc.stderr
