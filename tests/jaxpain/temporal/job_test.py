"""The end-to-end job's wiring, one seed: every stage runs and the report
names every method. Training is replaced by copies of the package's tiny
run (the trainer has its own tests; the job's real figures are in
docs/temporal.md), and rendering by a recorder (pyrender cannot share a
process with TensorFlow, which other test files import; synth.sequences
tests render_clip itself)."""

import json
import os
import shutil

import numpy as np
import pytest

from jaxpain.temporal import commands, evaluate, job


def test_job_runs_end_to_end(tiny_run, tmp_path, monkeypatch):
  calls = {"train": [], "render": None}

  def fake_train(spec, seed, data_dir, workdir):
    calls["train"].append(spec)
    if not os.path.isdir(workdir):
      shutil.copytree(tiny_run[0], workdir)
    return 0.0

  def fake_render(au, out_dir, identity, size):
    calls["render"] = au.shape
    return out_dir

  monkeypatch.setattr(job, "_train", fake_train)
  monkeypatch.setattr(commands, "render", fake_render)
  monkeypatch.setattr(job, "SAMPLE_SECONDS", 4.0)
  out = str(tmp_path / "job")
  res = job.run(out, [0], "configs/temporal.py:runlocal",
                "configs/temporal_fullseq.py:runlocal", samples=2,
                length=200)
  assert calls["train"] == ["configs/temporal.py:runlocal",
                            "configs/temporal_fullseq.py:runlocal"]
  methods = {job.OURS, job.FULL, "nearest", "random", "mean_face"}
  assert set(res["metrics"]) == methods | {evaluate.CEILING}
  assert set(res["wins_corr_and_sim"]) == methods - {job.OURS}
  with open(os.path.join(out, "report.md")) as f:
    report = f.read()
  assert all(m in report for m in methods) and "metrics.png" in report
  assert set(res["paired"]) == (methods - {job.OURS}) | {evaluate.CEILING}
  assert "ours against" in report and "/1 |" in report
  seg = np.load(os.path.join(out, "seed0", "eval", "per_segment.npz"))
  assert seg[f"{job.OURS}/PainCorr"].shape == seg["nearest/PainSim"].shape
  assert os.path.isfile(os.path.join(out, "metrics.png"))
  assert os.path.isfile(os.path.join(out, "sample_biovid.csv"))
  assert calls["render"] == (job.RENDER_FRAMES, 13)
  with open(os.path.join(out, "results.json")) as f:
    assert json.load(f)["seeds"] == [0]


def test_resumed_job_refuses_data_simulated_for_another_setting(tmp_path):
  config = commands.load_config("configs/temporal.py:runlocal")
  data = str(tmp_path / "data")
  job._simulate(config, data, 0)
  before = sorted(os.listdir(os.path.join(data, "train")))
  job._simulate(config, data, 0)  # same setting: resumes silently
  config.simulate.train += 1
  with pytest.raises(commands.UsageError, match="new --out"):
    job._simulate(config, data, 0)
  with pytest.raises(commands.UsageError, match="seed 0"):
    job._simulate(commands.load_config("configs/temporal.py:runlocal"),
                  data, 1)
  assert sorted(os.listdir(os.path.join(data, "train"))) == before
