"""The CLI on the real (tiny) ViTPain: teacher, then the distilled student."""

import json
import os
import re
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


TEACHER = "configs/teacher.py:runlocal,data=toy/10"
BAD_RUNS = {
    # case: (extra command line, the one line's expected part)
    "misspelt config arg": (
        ["--config", "configs/teacher.py:runlocal,stpes=3"],
        "unknown config arg 'stpes': did you mean 'steps'?"),
    "ill-typed config arg": (
        ["--config", f"{TEACHER},steps=abc"],
        "config arg steps='abc' must be an integer"),
    "misspelt override": (
        ["--config", TEACHER, "--config.num_trian_steps=3"],
        "unknown config field 'num_trian_steps' Did you mean "
        '"num_train_steps"'),
    "ill-typed override": (
        ["--config", TEACHER, "--config.num_train_steps=abc"],
        "flag --config.num_train_steps=abc: invalid literal for int()"),
    "negative count": (
        ["--config", f"{TEACHER},steps=-3"],
        "config.num_train_steps must be an integer >= 1, got -3"),
    "zero count": (
        ["--config", TEACHER, "--config.batch_size=0"],
        "config.batch_size must be an integer >= 1, got 0"),
    "missing config file": (
        ["--config", "configs/nope.py:runlocal"],
        "config file configs/nope.py not found"),
    "unwritable workdir": (
        ["--config", TEACHER, "--workdir", "/proc/jaxpain/run"],
        "--workdir /proc/jaxpain/run is not writable"),
}


def _error_line(stderr):
  """The one error line, which ends the output; no traceback before it."""
  assert "Traceback" not in stderr
  lines = stderr.strip().splitlines()
  assert [x for x in lines if "error:" in x] == lines[-1:], stderr[-3000:]
  assert lines[-1].startswith("python -m jaxpain.train: error: ")
  return lines[-1]


def _bad_run(env, argv, workdir):
  if "--workdir" not in argv:
    argv = [*argv, "--workdir", str(workdir)]
  return subprocess.run([sys.executable, "-m", "jaxpain.train", *argv],
                        cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=HANG_S)


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_bad_input_is_one_line_status_2_and_writes_nothing(case, env,
                                                           tmp_path):
  argv, expected = BAD_RUNS[case]
  proc = _bad_run(env, argv, tmp_path / "run")
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert len(proc.stderr.strip().splitlines()) == 1
  assert expected in _error_line(proc.stderr)
  assert not (tmp_path / "run").exists()


def test_verbose_adds_the_traceback(env, tmp_path):
  argv, expected = BAD_RUNS["negative count"]
  proc = _bad_run(env, [*argv, "--verbose"], tmp_path / "run")
  assert proc.returncode == 2
  assert "Traceback" in proc.stderr and expected in proc.stderr


def test_damaged_dataset_is_named_and_nothing_deleted(env, tmp_path,
                                                      damaged_3dpain):
  data_dir, version, files = damaged_3dpain
  proc = _bad_run(env, ["--config", "configs/teacher.py:runlocal,data="
                        f"3dpain/official,data_dir={data_dir}"],
                  tmp_path / "run")
  assert proc.returncode == 2, proc.stderr[-3000:]
  line = _error_line(proc.stderr)  # after the trainer's progress log
  assert "3dpain/official" in line and "is damaged" in line
  assert "nothing was deleted" in line and "--overwrite" in line
  assert {p.name: p.read_bytes() for p in version.iterdir()} == files
  assert not (tmp_path / "run").exists()


def test_corrupt_record_is_named_with_its_shard_and_index(env, tmp_path,
                                                          rotten_3dpain):
  # The shard keeps its size, so only reading the record finds the damage:
  # the data layer's message names dataset, split, shard file and index.
  data_dir, version, files = rotten_3dpain
  proc = _bad_run(env, ["--config", "configs/teacher.py:runlocal,data="
                        f"3dpain/official,data_dir={data_dir}"],
                  tmp_path / "run")
  assert proc.returncode == 2, proc.stderr[-3000:]
  line = _error_line(proc.stderr)
  shard = str(version / "3dpain-train.array_record-00000-of-00001")
  assert re.search(r"dataset 3dpain/official split 'train' record \d+: "
                   rf"shard {re.escape(shard)}, record \d+ of 66 in it is "
                   r"damaged \(", line), line
  assert "Nothing was changed" in line and "--overwrite" in line
  assert {p.name: p.read_bytes() for p in version.iterdir()} == files

