"""`python -m jaxpain.eval`: bad input is one line, status 2, nothing written.

The command's main() in this process, as the user's command line would call
it (argparse, no absl app), so each case costs no interpreter start.
"""

import pytest

from jaxpain.eval import __main__ as cli

EVAL = ["--dataset", "3dpain/tiny", "--split", "test"]
BAD = {
    # case: (command line without --out, the one line's expected part)
    "zero count": (["--checkpoint", "run", *EVAL, "--shots", "0"],
                   "argument --shots: must be a positive integer, got 0"),
    "negative count": (["--checkpoint", "run", *EVAL, "--batch_size", "-2"],
                       "argument --batch_size: must be a positive integer, "
                       "got -2"),
    "ill-typed count": (["--checkpoint", "run", *EVAL, "--shots", "two"],
                        "expected a positive integer, got 'two'"),
    "missing checkpoint": (["--checkpoint", "/nonexistent/run", *EVAL],
                           "checkpoint '/nonexistent/run' is neither a "
                           "jaxpain run folder nor a PyTorch checkpoint"),
    "unknown dataset": (["--checkpoint", ".", "--dataset", "mnist",
                         "--split", "test"],
                        "dataset 'mnist': expected '3dpain[/config]'"),
    "cv misspelt config arg": (
        ["cv", "--config", "configs/finetune.py:stpes=2", "--unbc_root",
         "/nonexistent", "--init", "scratch"],
        "unknown config arg 'stpes': did you mean 'steps'?"),
    "cv missing config file": (
        ["cv", "--config", "configs/nope.py", "--unbc_root", "x"],
        "config file configs/nope.py not found"),
    "cv ill-typed folds": (
        ["cv", "--config", "configs/finetune.py", "--unbc_root", "x",
         "--folds", "0,x"], "expected fold numbers like 0,1, got '0,x'"),
    "cv zero count": (
        ["cv", "--config", "configs/finetune.py", "--unbc_root", "x",
         "--shots", "0"], "argument --shots: must be a positive integer"),
    "cv missing data": (
        ["cv", "--config", "configs/finetune.py", "--unbc_root",
         "/nonexistent/UNBC", "--init", "scratch"],
        "UNBC folder '/nonexistent/UNBC' does not exist"),
}


def _main(argv, capsys):
  try:
    code = cli.main(argv)
  except SystemExit as e:  # argparse
    code = e.code
  return code, capsys.readouterr().err


def _one_line(err, prog="python -m jaxpain.eval"):
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(prog) and "error: " in (
      lines[0]), err
  return lines[0]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_status_2_and_writes_nothing(case, capsys,
                                                           tmp_path):
  argv, expected = BAD[case]
  code, err = _main([*argv, "--out", str(tmp_path / "out")], capsys)
  assert code == 2
  assert expected in _one_line(err)
  assert not (tmp_path / "out").exists()


def test_unwritable_out_folder(capsys, tmp_path):
  code, err = _main(["--checkpoint", ".", *EVAL, "--out", "/proc/x/report"],
                    capsys)
  assert code == 2
  assert "--out /proc/x/report is not writable" in _one_line(err)


def test_verbose_adds_the_traceback(capsys, tmp_path):
  code, err = _main(["--checkpoint", "/nonexistent/run", *EVAL, "--out",
                     str(tmp_path / "out"), "--verbose"], capsys)
  assert code == 2 and "Traceback" in err
  assert err.strip().splitlines()[-1].startswith(
      "python -m jaxpain.eval: error: checkpoint")


def test_damaged_dataset_is_named_and_nothing_deleted(capsys, tmp_path,
                                                      damaged_3dpain):
  data_dir, version, files = damaged_3dpain
  code, err = _main(["--checkpoint", ".", "--dataset", "3dpain/official",
                     "--split", "train", "--data_dir", data_dir, "--out",
                     str(tmp_path / "out")], capsys)
  assert code == 2
  line = _one_line(err)
  assert "is damaged" in line and "nothing was deleted" in line
  assert {p.name: p.read_bytes() for p in version.iterdir()} == files
  assert not (tmp_path / "out").exists()
