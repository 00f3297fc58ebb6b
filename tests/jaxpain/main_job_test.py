"""The main job end to end on the smallest scale, and its resume.

Synthesizes `3dpain/tiny` (3 identities, 48 px), trains the teacher and the
three students (two seeds each) for two steps each with the 1-block test
model, evaluates and writes the report. The numbers mean nothing at this scale; what is checked is
that every stage ran on the right inputs and that the report says so.
"""

import json
import math

import pytest
from PIL import Image

from jaxpain import main_job, main_report

ARGS = ["--dataset", "tiny", "--image-size", "32", "--variant", "mu/16",
        "--patch-size", "8", "--steps", "2", "--batch", "8",  # 8 devices
        "--seeds", "2"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, compile_cache):
  # compile_cache (tests/conftest.py): the runs share step functions.
  work = tmp_path_factory.mktemp("main") / "run"
  assert main_job.main(["--workdir", str(work), *ARGS]) == 0
  return work


def test_report_compares_the_students_over_seeds(finished):
  report = finished / "report"
  metrics = json.loads((report / "metrics.json").read_text())
  runs = metrics["runs"]
  assert set(runs) == {*main_job.STUDENTS, "constant"}
  for name in main_job.STUDENTS:
    per_seed = runs[name]["per_seed"]
    assert set(per_seed) == {"0", "1"}, name
    maes = [per_seed[s]["mae"] for s in ("0", "1")]
    assert all(0 <= m <= 16 for m in maes), name
    assert runs[name]["mean"]["mae"] == pytest.approx(sum(maes) / 2)
    assert runs[name]["sd"]["mae"] == pytest.approx(
        abs(maes[0] - maes[1]) / math.sqrt(2))
    assert (report / name / "seed1" / "metrics.json").exists(), name
  const = runs["constant"]["mean"]
  assert 0 <= const["prediction"] <= 16 and 0 < const["mae"] <= 16
  assert metrics["teacher"]["step"] in (1, 2)  # its best checkpoint
  assert [t["met"] in (True, False) for t in metrics["targets"]] == [True] * 4
  assert set(metrics["stage_seconds"]) == {"dataset", "teacher", "evaluate",
                                           *main_job.STUDENTS}
  text = (report / "report.md").read_text()
  for name, (_, _, _) in main_job.STUDENTS.items():
    assert f"| {name} (" in text and "| 2 |" in text
  assert "Heatmap teacher" in text and "2 steps per student" in text
  assert "## Targets" in text and "## Time per stage" in text
  for png in ("curves.png", "contact_sheet.png"):
    Image.open(report / png).verify()


def test_curves_draw_every_run_and_seed(finished, monkeypatch):
  drawn = []
  import matplotlib.axes

  real = matplotlib.axes.Axes.plot

  def spy(self, *a, label=None, **kw):
    drawn.append((label, len(a[0])))
    return real(self, *a, label=label, **kw)

  monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
  main_report.curves(str(finished / "report"), str(finished))
  runs = {label for label, _ in drawn if label}
  assert runs == {"teacher", *main_job.STUDENTS}
  # two panels; the teacher once, every student once per seed
  assert len(drawn) == 2 * (1 + 2 * len(main_job.STUDENTS))
  assert all(n >= 1 for _, n in drawn)


def test_mean_sd_and_a_difference_within_the_seed_spread():
  assert main_report.mean_sd([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
  assert main_report.mean_sd([2.0]) == (2.0, 0.0)

  def run(maes):
    return main_report.summarise({i: {"mae": m, "pearson": 0.9}
                                  for i, m in enumerate(maes)}, "x")

  runs = {"student_distill": run([2.0, 2.2]),
          "student_no_teacher": run([2.1, 2.5]),
          "student_no_neutral": run([4.0, 4.1]),
          "constant": {"mean": {"mae": 4.2}, "sd": {"mae": 0.0}}}
  by_name = {t["name"]: t for t in main_report.targets(runs)}
  neutral = by_name["neutral reference lowers MAE >= 15% (no teacher)"]
  assert neutral["met"] and not neutral["within_spread"]
  distill = by_name["distillation lowers MAE >= 5% (equal steps)"]
  assert distill["value"] == pytest.approx(0.2 / 2.3)
  assert distill["met"] and distill["within_spread"]
  # a job that trained only the distilled student checks only its targets
  only = {k: runs[k] for k in ("student_distill", "constant")}
  assert [t["name"] for t in main_report.targets(only)] == [
      "distilled student: Pearson r >= 0.8",
      "distilled student: MAE <= half the constant's"]


def test_students_picks_runs_and_refuses_unknown_names(tmp_path, capsys):
  args = main_job.parse_args(["--students", "student_distill"])
  assert args.students == ["student_distill"]
  assert main_job.parse_args([]).students == list(main_job.STUDENTS)
  with pytest.raises(SystemExit) as e:
    main_job.main(["--workdir", str(tmp_path / "x"), "--students", "nope"])
  assert e.value.code != 0 and "invalid choice" in capsys.readouterr().err
  assert not (tmp_path / "x").exists()


def test_rerun_resumes_without_training_again(finished, capsys):
  before = (finished / "report" / "metrics.json").read_text()
  clock = finished / "report" / "stage_seconds.json"
  seconds = json.loads(clock.read_text())
  assert set(seconds) == {"dataset", "teacher", "evaluate",
                          *main_job.STUDENTS}
  stamps = {p: p.stat().st_mtime
            for p in [*finished.glob("*/DONE"), *finished.glob("*/*/DONE")]}
  assert len(stamps) == 1 + 2 * len(main_job.STUDENTS)
  assert main_job.main(["--workdir", str(finished), *ARGS]) == 0
  out = capsys.readouterr().out
  assert out.count("already finished") == 1 + 2 * len(main_job.STUDENTS)
  assert "| student_distill (" in out and "report.md" in out
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
