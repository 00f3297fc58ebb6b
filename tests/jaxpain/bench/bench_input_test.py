"""scripts/bench_input.py and jaxpain.bench.input: structure, never speed.

A smoke run on a tiny fake release (32 px, one layout, in-process only)
checks that every setting is reported with consistent counts, and that
every figure is a finite number or explicitly None: a fast machine may see
a clock that did not advance, which is not a failure. No speed is asserted.
"""

import json
import math
import os
import subprocess
import sys

from jaxpain.bench import input as bench_input
from jaxpain.bench import input_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SCRIPT = os.path.join(ROOT, "scripts", "bench_input.py")
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def _finite_or_none(x) -> bool:
  return x is None or (isinstance(x, (int, float)) and math.isfinite(x)
                       and x >= 0)


def test_smoke_run_reports_every_setting(tmp_path):
  out = tmp_path / "input.json"
  cmd = [sys.executable, SCRIPT, "--data-dir", str(tmp_path / "data"),
         "--source", "fixture", "--render", "32", "--sizes", "32",
         "--layouts", "jpeg", "--identities", "2", "--image-size", "32",
         "--batch", "4", "--batches", "3", "--before-batches", "1",
         "--warmup", "1", "--workers", "0", "--out", str(out)]
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                        timeout=600, env=ENV)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rep = json.loads(out.read_text())
  (cell,) = rep["cells"]
  assert (cell["stored"], cell["layout"]) == (32, "jpeg")
  got = {(r["reader"], r["neutral_mode"], r["neutral_cache_mb"])
         for r in cell["rows"]}
  assert got == {("records", "same_view", 512),
                 ("records", "random_view", 512),
                 ("records", "random_view", 0),
                 ("tfds.data_source", "same_view", 0),
                 ("tfds.data_source", "random_view", 0)}
  for r in cell["rows"]:
    assert r["image_shape"] == [32, 32, 3] and r["workers"] == 0
    assert r["pairs"] == 4 * (3 if r["reader"] == "records" else 1)
    for k in ("pairs_per_s", "pairs_per_cpu_s", "wall_s", "cpu_s"):
      assert _finite_or_none(r[k]), (k, r[k])
  assert set(cell["stages"]) == {"read", "parse", "decode", "resize",
                                 "neutral"}
  assert all(_finite_or_none(v) for v in cell["stages"].values())
  assert _finite_or_none(cell["tfdata"]["pairs_per_cpu_s"])
  assert "| 32 | jpeg |" in proc.stdout and "| records | same_view |" in \
      proc.stdout


def test_the_table_shows_absent_figures_as_none():
  row = {"reader": "records", "neutral_mode": "same_view",
         "neutral_cache_mb": 512, "workers": 0, "pairs_per_cpu_s": None,
         "pairs_per_s": None}
  cell = {"stored": 64, "layout": "raw", "disk_mib": 1.0, "rows": [row],
          "stages": {"read": None, "parse": 1.0, "decode": 0.5,
                     "resize": 0.0, "neutral": 0.1}}
  text = input_cli.table({"workers": 2, "cells": [cell]})
  assert "| 64 | raw | 1.0 | records | same_view | None | - | - | - | " \
      "not met |" in text
  assert "| 64 | raw | None | 1.0 | 0.5 | 0.0 | 0.1 | None | None |" in text
  assert bench_input.rate(10, 0.0) is None and bench_input.rate(10, 2) == 5


def test_bad_flags_are_named():
  proc = subprocess.run([sys.executable, SCRIPT, "--data-dir", "/tmp/x",
                         "--layouts", "png"], capture_output=True, text=True,
                        cwd=ROOT, timeout=120, env=ENV)
  assert proc.returncode != 0 and "--layouts ['png']" in proc.stderr


def test_a_dataset_that_cannot_be_built_is_named(tmp_path):
  """A folder that cannot be written: one line, no traceback."""
  blocked = tmp_path / "file"
  blocked.write_text("not a folder")
  proc = subprocess.run([sys.executable, SCRIPT, "--data-dir", str(blocked),
                         "--source", "fixture", "--sizes", "32"],
                        capture_output=True, text=True, cwd=ROOT, timeout=120,
                        env=ENV)
  assert proc.returncode != 0
  assert "bench_input:" in proc.stderr and "Traceback" not in proc.stderr
