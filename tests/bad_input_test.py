"""The bad-input table (docs/bad_input.md) holds, row by row.

Every row of the table names the test that runs its case; this file checks
that each named test exists, and runs the rows whose command has no test
module of its own: the main job's argument and output-folder checks and
the benchmark scripts' argument checks (in this process, through their
main(argv), as the command line would call them).
"""

import importlib.util
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(ROOT, "docs", "bad_input.md")


def _rows():
  """(case, test id) of every table row."""
  rows = []
  for line in open(TABLE):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 4 and cells[3].startswith("`tests/"):
      rows.append((cells[0], cells[3].strip("`")))
  return rows


def test_every_row_names_a_test_that_exists():
  rows = _rows()
  assert len(rows) >= 25, "the table lost rows"
  for case, test_id in rows:
    path, _, name = test_id.partition("::")
    name = re.sub(r"\[.*\]$", "", name).split("::")[-1]
    source = open(os.path.join(ROOT, path)).read()
    assert re.search(rf"^\s*def {re.escape(name)}\(", source, re.M), (
        f"{case}: {test_id} does not exist")


def _script(name):
  spec = importlib.util.spec_from_file_location(
      f"_bench_{name}", os.path.join(ROOT, "scripts", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _main_job(argv):
  from jaxpain import main_job

  return main_job.main(argv)


COMMANDS = {
    "main job: zero steps": (
        _main_job, ["--steps", "0"], "python -m jaxpain.main_job: error: "
        "--steps must be positive, got 0"),
    "main job: negative batch": (
        _main_job, ["--batch", "-4"], "--batch must be positive, got -4"),
    "main job: ill-typed count": (
        _main_job, ["--steps", "many"],
        "argument --steps: invalid int value: 'many'"),
    "main job: unwritable workdir": (
        _main_job, ["--workdir", "/proc/jaxpain/main"],
        "--workdir /proc/jaxpain/main is not writable"),
    "bench_data: zero reads": (
        lambda a: _script("bench_data").main(a), ["--reads", "0"],
        "scripts/bench_data.py: error: argument --reads: must be a positive "
        "integer, got 0"),
    "bench_data: unwritable data_dir": (
        lambda a: _script("bench_data").main(a), ["--data_dir", "/proc/x/d"],
        "--data_dir /proc/x/d is not writable"),
    "bench_synth: negative identities": (
        lambda a: _script("bench_synth").main(a), ["--num-identities", "-3"],
        "scripts/bench_synth.py: error: argument --num-identities: must be a "
        "positive integer, got -3"),
}


@pytest.mark.parametrize("case", sorted(COMMANDS))
def test_commands_answer_bad_input_in_one_line(case, capsys):
  main, argv, expected = COMMANDS[case]
  try:
    code = main(argv)
  except SystemExit as e:  # argparse
    code = e.code
  err = capsys.readouterr().err
  assert code == 2
  (line,) = err.strip().splitlines()
  assert expected in line and "error: " in line
