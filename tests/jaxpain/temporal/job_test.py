"""The end-to-end job on the runlocal settings, one seed: every stage runs
and the report names every method (the figures are in docs/temporal.md)."""

import json
import os

from jaxpain.temporal import cli, job


def test_job_runs_end_to_end(tiny_run, tmp_path, monkeypatch):
  del tiny_run  # same config: its compiled programs are in the cache
  rendered = {}

  def fake_render(au, out_dir, identity, size):
    # Rendering (pyrender) cannot share a process with TensorFlow, which
    # other test files import; synth.sequences tests render_clip itself.
    rendered["frames"] = au.shape
    return out_dir

  monkeypatch.setattr(cli, "render", fake_render)
  monkeypatch.setattr(job, "SAMPLE_SECONDS", 4.0)
  out = str(tmp_path / "job")
  res = job.run(out, [0], "configs/temporal.py:runlocal",
                "configs/temporal_fullseq.py:runlocal", length=200)
  methods = {job.OURS, job.FULL, "nearest", "random", "mean_face"}
  assert set(res["metrics"]) == methods
  assert set(res["wins_corr_and_sim"]) == methods - {job.OURS}
  report = open(os.path.join(out, "report.md")).read()
  assert all(m in report for m in methods) and "metrics.png" in report
  assert os.path.isfile(os.path.join(out, "metrics.png"))
  assert rendered["frames"][1] == 13
  with open(os.path.join(out, "results.json")) as f:
    assert json.load(f)["seeds"] == [0]
