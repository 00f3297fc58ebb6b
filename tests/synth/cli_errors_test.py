"""synth.cli_errors: the one-line, exit-2 answer every CLI gives bad input."""

import argparse
import os

import pytest

from synth import cli_errors


def _bad():
  raise cli_errors.UserError("the thing is wrong;\n  do this instead")


def test_bad_input_is_one_line_and_status_2(capsys):
  assert cli_errors.run("prog", _bad) == 2
  err = capsys.readouterr().err
  assert err == "prog: error: the thing is wrong; do this instead\n"


def test_verbose_adds_the_traceback(capsys):
  assert cli_errors.run("prog", _bad, verbose=True) == 2
  err = capsys.readouterr().err
  assert "Traceback" in err and "_bad" in err
  assert err.endswith("prog: error: the thing is wrong; do this instead\n")


def test_os_errors_and_extra_types_are_bad_input_but_bugs_are_not(capsys):
  def missing():
    open("/nonexistent/file.json")

  assert cli_errors.run("prog", missing) == 2
  assert capsys.readouterr().err == (
      "prog: error: No such file or directory: /nonexistent/file.json\n")

  class Mine(Exception):
    pass

  def mine():
    raise Mine("named")

  assert cli_errors.run("prog", mine, extra=(Mine,)) == 2
  with pytest.raises(ZeroDivisionError):
    cli_errors.run("prog", lambda: 1 / 0)
  assert cli_errors.run("prog", lambda: None) == 0


def test_argument_parser_errors_in_one_line(capsys):
  p = cli_errors.ArgumentParser(prog="prog")
  p.add_argument("--count", type=cli_errors.positive_int)
  p.add_argument("--level", type=cli_errors.non_negative_int)
  assert p.parse_args(["--count", "3", "--verbose"]).verbose
  for argv, message in ((["--count", "0"], "must be a positive integer, got 0"),
                        (["--count", "-3"], "got -3"),
                        (["--count", "x"], "expected a positive integer"),
                        (["--level", "-1"], "an integer >= 0"),
                        (["--nope"], "unrecognized arguments")):
    with pytest.raises(SystemExit) as e:
      p.parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("prog: error:") and message in err, err
    assert err.count("\n") == 1, err
  assert cli_errors.positive_int("7") == 7
  with pytest.raises(argparse.ArgumentTypeError):
    cli_errors.non_negative_int("-1")


def test_output_dir_check_probes_and_leaves_nothing(tmp_path):
  cli_errors.check_output_dir(str(tmp_path / "new" / "deeper"), "--out")
  assert os.listdir(tmp_path) == []  # nothing created
  blocker = tmp_path / "file"
  blocker.write_text("x")
  for path in (blocker, blocker / "sub"):
    with pytest.raises(cli_errors.UserError, match="is a file, not a folder"):
      cli_errors.check_output_dir(str(path), "--out")
  with pytest.raises(cli_errors.UserError, match="--workdir /proc/x/y is not"):
    cli_errors.check_output_dir("/proc/x/y", "--workdir")  # even as root
  assert blocker.read_text() == "x"


def test_user_errors_are_value_errors_and_absl_usage_errors():
  from absl import app

  e = cli_errors.UserError("m")
  assert isinstance(e, ValueError) and isinstance(e, app.UsageError)
  assert e.exitcode == 2
