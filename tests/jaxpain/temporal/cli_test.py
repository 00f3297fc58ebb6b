"""`python -m jaxpain.temporal`: simulate, sample, evaluate, bad input."""

import csv
import json
import os

import numpy as np
import pytest

from jaxpain.temporal import cli
from synth import sequences as sq

RUNLOCAL = "configs/temporal.py:runlocal"


def test_simulate_writes_disjoint_splits(tmp_path, capsys):
  out = str(tmp_path / "data")
  assert cli.main(["simulate", "--config", RUNLOCAL, "--out", out,
                   "--train", "2", "--test", "1", "--val", "0"]) == 0
  meta = json.loads(capsys.readouterr().out)
  assert set(meta) == {"train", "test"}
  assert not set(meta["train"]["subject_ids"]) & set(
      meta["test"]["subject_ids"])
  au = np.load(os.path.join(out, "train", "au.npy"))
  assert au.shape == (2, 1000, sq.NUM_AUS)


def test_simulate_tune_adds_a_disjoint_split_and_touches_nothing_else(
    tmp_path, capsys):
  out = str(tmp_path / "data")
  assert cli.main(["simulate", "--config", RUNLOCAL, "--out", out]) == 0
  capsys.readouterr()
  before = {s: np.load(os.path.join(out, s, "au.npy"))
            for s in ("train", "val", "test")}
  assert cli.main(["simulate", "--config", RUNLOCAL, "--out", out,
                   "--tune", "2"]) == 0
  meta = json.loads(capsys.readouterr().out)
  assert set(meta) == {"tune"}
  assert meta["tune"]["subject_ids"] == [1000, 1001]
  for split, au in before.items():
    np.testing.assert_array_equal(
        np.load(os.path.join(out, split, "au.npy")), au)
  assert np.load(os.path.join(out, "tune", "au.npy")).shape[0] == 2


def _read(path):
  with open(path) as f:
    rows = list(csv.DictReader(f))
  au = np.array([[float(r[a]) for a in sq.SEQ_AUS] for r in rows])
  return rows, au


def test_sample_programme_and_csv_stimulus(tiny_run, tmp_path, capsys):
  workdir = tiny_run[0]
  out = str(tmp_path / "au.csv")
  assert cli.main(["sample", "--workdir", workdir, "--programme", "step",
                   "--duration", "4", "--streams", "2", "--out", out]) == 0
  info = json.loads(capsys.readouterr().out)
  rows, au = _read(out)
  assert info["frames"] == 100 and len(rows) == 200
  assert {r["stream"] for r in rows} == {"0", "1"}
  assert au.min() >= 0 and np.all(au <= sq.AU_MAX)
  pspi = np.array([float(r["pspi"]) for r in rows])
  np.testing.assert_allclose(pspi, sq.pspi(au), atol=2e-3)
  # A stimulus CSV in degrees Celsius, sampled at 10 Hz.
  stim_csv = tmp_path / "stim.csv"
  t = np.arange(0, 3.0, 0.1)
  stim_csv.write_text("time,temperature\n" + "\n".join(
      f"{x:.1f},{32 + 4 * x:.2f}" for x in t))
  out2 = str(tmp_path / "au2.csv")
  assert cli.main(["sample", "--workdir", workdir, "--stimulus",
                   str(stim_csv), "--unit", "°C", "--out", out2]) == 0
  rows2, _ = _read(out2)
  assert len(rows2) == 73 and float(rows2[-1]["stimulus"]) > 0.5


def test_evaluate_scores_model_and_baselines(tiny_run, tiny_data, tmp_path,
                                              capsys):
  out = str(tmp_path / "report")
  assert cli.main(["evaluate", "--workdir", tiny_run[0], "--data",
                   tiny_data, "--out", out, "--samples", "2", "--length",
                   "200"]) == 0
  with open(os.path.join(out, "metrics.json")) as f:
    m = json.load(f)["metrics"]
  assert set(m) == {"diffusion forcing", "nearest", "random", "mean_face",
                    "simulator, new noise"}
  # The simulator re-run with new noise is the ceiling of the model.
  assert m["simulator, new noise"]["PainSim"] < m["random"]["PainSim"]
  assert all(np.isfinite(v["PainSim"]) for v in m.values())
  assert os.path.isfile(os.path.join(out, "segment_0.png"))


def test_evaluate_on_the_tuning_split_with_a_sampler_override(
    tiny_run, tiny_data, tmp_path, capsys):
  import shutil

  data = str(tmp_path / "data")
  shutil.copytree(tiny_data, data)
  assert cli.main(["simulate", "--config", RUNLOCAL, "--out", data,
                   "--tune", "2"]) == 0
  scores = []
  for extra in ([], ["--context_sigma", "0.5"]):
    out = str(tmp_path / f"tune{len(extra)}")
    assert cli.main(["evaluate", "--workdir", tiny_run[0], "--data", data,
                     "--out", out, "--samples", "2", "--length", "200",
                     "--split", "tune"] + extra) == 0
    with open(os.path.join(out, "metrics.json")) as f:
      scores.append(json.load(f))
  assert scores[0]["segments"] == 2  # the two tuning subjects
  ours = [s["metrics"]["diffusion forcing"] for s in scores]
  assert ours[0]["PainDist"] != ours[1]["PainDist"]  # the override acts
  # ... on the model only: the baselines score the same segments alike.
  assert (scores[0]["metrics"]["nearest"] == scores[1]["metrics"]["nearest"])


@pytest.mark.parametrize("argv, words", [
    (["sample", "--workdir", "WD", "--out", "x.csv"], "exactly one"),
    (["sample", "--workdir", "WD", "--programme", "step", "--out", "x.txt"],
     ".csv"),
    (["train", "--config", RUNLOCAL, "--workdir", "WORK", "--data",
      "NODATA"],
     "no simulated data"),
    (["evaluate", "--workdir", "NORUN", "--data", "NODATA", "--out", "R"],
     "not a simulated split"),
    (["evaluate", "--workdir", "WD", "--data", "NODATA", "--out", "R",
      "--guidance", "1,2"], "three weights"),
    (["evaluate", "--workdir", "WD", "--data", "NODATA", "--out", "R",
      "--context_sigma", "-0.1"], "must be >= 0"),
    (["sample", "--workdir", "WD", "--programme", "step", "--out", "x.csv",
      "--guidance", "a,b,c"], "three weights"),
    (["train", "--config", "configs/temporal.py:bogus=1", "--workdir",
      "WORK"], "unknown config args"),
])
def test_bad_input_is_one_line_and_status_2(argv, words, tiny_run, tmp_path,
                                            capsys, monkeypatch):
  monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.dirname(os.path.abspath(__file__))))))
  subs = {"WD": tiny_run[0], "NODATA": str(tmp_path / "none"),
          "NORUN": str(tmp_path), "WORK": str(tmp_path / "W")}
  argv = [subs.get(a, a) for a in argv]
  assert cli.main(argv) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and words in err[0], err
  assert not os.path.exists(tmp_path / "W")
