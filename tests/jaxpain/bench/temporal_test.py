"""The temporal benchmark runs and reports finite figures (no timing is
asserted: speed is measured by scripts/bench_temporal.py, not tested)."""

import json
import math
import os

from jaxpain.bench import temporal


def test_capacity_counts_only_real_time_batches():
  rows = [{"batch": 1, "r": 6.0}, {"batch": 4, "r": 1.5},
          {"batch": 16, "r": 0.5}, {"batch": 64, "r": None}]
  assert temporal.capacity(rows, "r") == 6.0
  assert temporal.capacity(rows[2:], "r") is None


def test_run_writes_finite_figures(tmp_path):
  res = temporal.run(str(tmp_path), variant="tiny", chunks=2, batches=(1,))
  s = res["single_stream"]
  assert s["frames_per_chunk"] == 48 and s["evaluations_per_chunk"] > 0
  for key in ("chunk_ms_median", "chunk_cpu_ms_median", "ms_per_24_frames_cpu"):
    assert math.isfinite(s[key]) and s[key] >= 0
  assert res["model"]["parameters"] > 0 and not res["model"]["trained"]
  with open(os.path.join(tmp_path, "bench_temporal.json")) as f:
    assert json.load(f)["batched"][0]["batch"] == 1
