"""`python -m synth`: bad inputs fail cleanly; a run writes a contact sheet."""

import os

import numpy as np
import pytest
from PIL import Image

from synth import cli, store


def _run(capsys, *argv):
  code = cli.run(list(argv))
  return code, capsys.readouterr().err


@pytest.mark.parametrize(
  "extra, message",
  [
    (["--num-identities", "0"], "num_identities"),
    (["--num-identities", "-3"], "num_identities"),
    (["--num-identities", "abc"], "invalid int value: 'abc'"),
    (["--num-identities", "1", "--workers", "0"], "positive integer"),
    (["--num-identities", "1", "--resolution", "0"], "resolution"),
    (["--num-identities", "1", "--au-override", "AU43=0.5"], "AU43"),
    (
      ["--num-identities", "1", "--contact-sheet", "/proc/x/sheet.png"],
      "--contact-sheet /proc/x is not writable",
    ),
    (["--num-identities", "1", "--au-override", "AU99=1"], "unknown AU"),
    (["--num-identities", "1", "--au-override", "AU4=7"], "out of range"),
    (["--num-identities", "1", "--au-override", "AU4"], "NAME=INTENSITY"),
    (
      ["--num-identities", "1", "--head-path", "/nonexistent/mh"],
      "head data is missing",
    ),
    (
      [
        "--num-identities",
        "1",
        "--texture",
        "diffusers",
        "--diffusion-weights",
        "/nonexistent/sd",
      ],
      "does not exist",
    ),
    (["--num-identities", "1", "--texture", "diffusers"], "diffusion_weights"),
    (
      [
        "--num-identities",
        "1",
        "--background",
        "inpaint",
        "--inpaint-weights",
        "/nonexistent/inp",
      ],
      "does not exist",
    ),
    (
      ["--num-identities", "1", "--pain-distribution", "gaussian"],
      "pain distribution",
    ),
    (["--num-identities", "1", "--views", "0,8;oops"], "--views"),
  ],
)
def test_bad_input_exits_non_zero_and_writes_nothing(
  tmp_path, capsys, extra, message
):
  out = tmp_path / "out"
  code, err = _run(capsys, "--out", str(out), "--no-progress", *extra)
  assert code == 2
  assert message in err and err.startswith("python -m synth: error:")
  assert err.count("\n") == 1  # one line
  assert not out.exists()


def test_unwritable_output_folder(tmp_path, capsys):
  blocker = tmp_path / "file.txt"
  blocker.write_text("not a folder")
  code, err = _run(
    capsys,
    "--out",
    str(blocker / "sub"),
    "--num-identities",
    "1",
    "--no-progress",
  )
  assert code == 2 and "not writable" in err
  code, err = _run(capsys, "--out", str(blocker), "--num-identities", "1")
  assert code == 2 and "not a folder" in err
  assert blocker.read_text() == "not a folder"


def test_bad_config_file(tmp_path, capsys):
  cfg = tmp_path / "c.json"
  cfg.write_text('{"num_identities": 2, "au_override": {"AU4": 9}}')
  code, err = _run(capsys, "--out", str(tmp_path / "o"), "--config", str(cfg))
  assert code == 2 and "AU4=9 is out of range" in err
  assert not (tmp_path / "o").exists()


def test_run_writes_dataset_and_contact_sheet(tmp_path, capsys):
  out, sheet = tmp_path / "ds", tmp_path / "sheets" / "sheet.png"
  code = cli.run(
    [
      "--out",
      str(out),
      "--num-identities",
      "2",
      "--resolution",
      "32",
      "--texture-size",
      "128",
      "--workers",
      "1",
      "--image-format",
      "jpeg",
      "--contact-sheet",
      str(sheet),
      "--no-progress",
    ]
  )
  assert code == 0, capsys.readouterr().err
  assert store.finished_identities(str(out)) == {0, 1}
  names = os.listdir(out / "identities" / "id00001")
  assert "expr10_view2.jpg" in names and "expr10_heatmap.png" in names
  img = np.asarray(Image.open(sheet))
  assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 1000
  # Not a blank page: tiles with colour (faces, backgrounds, hot heatmaps).
  assert img.std() > 30 and (img[..., 0].astype(int) - img[..., 2]).max() > 150
  assert "wrote 2 identities" in capsys.readouterr().out
