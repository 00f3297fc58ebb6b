"""The main job end to end on the smallest scale, and its resume.

Synthesizes `3dpain/tiny` (3 identities, 48 px), trains the teacher and the
three students for two steps each with the 1-block test model, evaluates and
writes the report. The numbers mean nothing at this scale; what is checked is
that every stage ran on the right inputs and that the report says so.
"""

import json
import math

import pytest
from PIL import Image

from jaxpain import main_job

ARGS = ["--dataset", "tiny", "--image-size", "32", "--variant", "mu/16",
        "--patch-size", "8", "--steps", "2", "--batch", "8"]  # 8 devices


@pytest.fixture(scope="module")
def finished(tmp_path_factory, compile_cache):
  # compile_cache (tests/conftest.py): the runs share step functions.
  work = tmp_path_factory.mktemp("main") / "run"
  assert main_job.main(["--workdir", str(work), *ARGS]) == 0
  return work


def test_report_compares_the_three_students_and_the_teacher(finished):
  report = finished / "report"
  metrics = json.loads((report / "metrics.json").read_text())
  assert set(metrics) == {*main_job.STUDENTS, "teacher"}
  for name in main_job.STUDENTS:
    assert math.isfinite(metrics[name]["mae"]), name
    assert 0 <= metrics[name]["mae"] <= 16, name
    assert (report / name / "metrics.json").exists(), name
  assert metrics["teacher"]["step"] in (1, 2)  # its best checkpoint
  summary = (report / "summary.md").read_text()
  for name, (_, _, desc) in main_job.STUDENTS.items():
    assert f"| {name} ({desc}) |" in summary
  assert "Heatmap teacher" in summary and "2 steps per run" in summary
  for png in ("curves.png", "contact_sheet.png"):
    Image.open(report / png).verify()


def test_curves_draw_every_run(finished, monkeypatch):
  drawn = []
  import matplotlib.axes

  real = matplotlib.axes.Axes.plot

  def spy(self, *a, label=None, **kw):
    drawn.append((self.get_title(), label, len(a[0])))
    return real(self, *a, label=label, **kw)

  monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
  main_job._curves(str(finished / "report"),
                   main_job.parse_args(["--workdir", str(finished), *ARGS]))
  runs = {label for _, label, _ in drawn}
  assert runs == {"teacher", *main_job.STUDENTS}
  assert all(n >= 1 for _, _, n in drawn)


def test_rerun_resumes_without_training_again(finished, capsys):
  before = (finished / "report" / "metrics.json").read_text()
  clock = finished / "report" / "stage_seconds.json"
  seconds = json.loads(clock.read_text())
  assert set(seconds) == {"dataset", "teacher", *main_job.STUDENTS,
                          *(f"eval {n}" for n in main_job.STUDENTS)}
  stamps = {p: p.stat().st_mtime for p in finished.glob("*/DONE")}
  assert len(stamps) == 1 + len(main_job.STUDENTS)
  assert main_job.main(["--workdir", str(finished), *ARGS]) == 0
  out = capsys.readouterr().out
  assert out.count("already finished") == 1 + len(main_job.STUDENTS)
  assert {p: p.stat().st_mtime for p in stamps} == stamps
  after = json.loads((finished / "report" / "metrics.json").read_text())
  assert after == json.loads(before)
  # the report's time stays the cost of the run that did the work
  assert json.loads(clock.read_text()) == seconds


def test_bad_sizes_are_refused_before_anything_runs(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    main_job.main(["--workdir", str(tmp_path / "x"), "--image-size", "30",
                   "--patch-size", "8"])
  assert e.value.code != 0
  assert "not a multiple of --patch-size" in capsys.readouterr().err
  assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("mesh", ["2.2", "a.1.1", "2.2.2.2"])
def test_bad_mesh_is_refused_before_anything_runs(tmp_path, capsys, mesh):
  with pytest.raises(SystemExit) as e:
    main_job.main(["--workdir", str(tmp_path / "x"), "--mesh", mesh])
  assert e.value.code != 0
  assert "expected data.fsdp.tensor" in capsys.readouterr().err
  assert not (tmp_path / "x").exists()


def test_unreadable_stage_times_restart_instead_of_failing(tmp_path):
  path = tmp_path / "stage_seconds.json"
  path.write_text("{not json")
  clock = main_job.StageClock(str(path))
  assert clock.seconds == {}
  with clock.stage("dataset", skip=False):
    pass
  assert set(json.loads(path.read_text())) == {"dataset"}


def test_a_skipped_stage_keeps_the_time_of_the_run_that_did_it(tmp_path):
  path = tmp_path / "stage_seconds.json"
  path.write_text(json.dumps({"teacher": 111.0}))
  clock = main_job.StageClock(str(path))
  with clock.stage("teacher", skip=True):
    pass
  with clock.stage("dataset", skip=True):  # never timed before: recorded
    pass
  got = json.loads(path.read_text())
  assert got["teacher"] == 111.0 and got["dataset"] < 5
  with clock.stage("teacher", skip=False):  # ran again: its new time
    pass
  assert main_job.StageClock(str(path)).seconds["teacher"] < 5
