"""`python -m jaxpain.eval`: evaluate a checkpoint on a split, write a report.

  python -m jaxpain.eval --checkpoint runs/student --dataset 3dpain/tiny \
      --split test --out runs/student/report_test
  python -m jaxpain.eval --checkpoint vitpain.ckpt --dataset unbc_mcmaster \
      --unbc_root ~/data/UNBC --split fold0 \
      --calibrate_split fold1+fold2+fold3+fold4 --shots 3 --out out/zeroshot

UNBC 5-fold cross-validation (fine-tune per fold, score, tabulate):

  python -m jaxpain.eval cv --config configs/finetune.py \
      --unbc_root ~/data/UNBC --init pretrained --pretrained runs/student \
      --out runs/unbc_cv [--selection inner_val] [--references pspi0] \
      [--shots 3] [--folds 0,1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from jaxpain.eval import evaluate, unbc_source
from jaxpain.train import config as config_lib
from synth import cli_errors

PROG = "python -m jaxpain.eval"


def _overrides(text: str | None) -> dict:
  """'variant=B/16,official_compat=false' -> typed dict."""
  out = {}
  for part in (text or "").split(","):
    if not part.strip():
      continue
    k, _, v = part.partition("=")
    v = v.strip()
    low = v.lower()
    if low in ("true", "false"):
      out[k.strip()] = low == "true"
    else:
      try:
        out[k.strip()] = int(v)
      except ValueError:
        out[k.strip()] = v
  return out


def parser() -> cli_errors.ArgumentParser:
  p = cli_errors.ArgumentParser(prog=PROG,
                                description=__doc__.splitlines()[0])
  p.add_argument("--checkpoint", required=True,
                 help="a jaxpain run folder or a PyTorch checkpoint file")
  p.add_argument("--dataset", required=True,
                 help="3dpain[/config] or unbc_mcmaster[/config]")
  p.add_argument("--split", required=True,
                 help="e.g. test, validation, fold0, fold1+fold2, all")
  p.add_argument("--out", required=True, help="report folder")
  p.add_argument("--data_dir", default=None, help="TFDS data_dir")
  p.add_argument("--unbc_root", default=None,
                 help="read UNBC from this folder instead of TFDS")
  p.add_argument("--references", default="sequence_start",
                 choices=unbc_source.REFERENCE_POLICIES,
                 help="UNBC test-time neutral references; 'pspi0' is the "
                 "released protocol and uses test labels")
  p.add_argument("--shots", type=cli_errors.positive_int, default=1,
                 help="neutral references per frame (multi-shot)")
  p.add_argument("--calibrate_split", default=None,
                 help="split whose predictions pick the F1 thresholds")
  p.add_argument("--which", default="best",
                 help="run checkpoint: best | latest | a step number")
  p.add_argument("--model", default=None,
                 help="PyTorch files only: ViTPainConfig overrides, e.g. "
                 "variant=B/16,official_compat=false")
  p.add_argument("--batch_size", type=cli_errors.positive_int, default=64)
  p.add_argument("--image_size", type=cli_errors.positive_int, default=None,
                 help="resize UNBC folder images on the host (default: "
                 "stored size)")
  return p


def cv_parser() -> cli_errors.ArgumentParser:
  p = cli_errors.ArgumentParser(prog=f"{PROG} cv",
                                description="UNBC-McMaster cross-validation")
  p.add_argument("--config", required=True,
                 help="trainer config file[:args], e.g. configs/finetune.py")
  p.add_argument("--unbc_root", default=None, help="the UNBC folder")
  p.add_argument("--tfds", default=None,
                 help="instead: a prepared unbc_mcmaster/<config> dataset")
  p.add_argument("--data_dir", default=None, help="TFDS data_dir")
  p.add_argument("--out", required=True, help="output folder (resumes)")
  p.add_argument("--init", default="pretrained", choices=("pretrained",
                                                          "scratch"))
  p.add_argument("--pretrained", default=None,
                 help="3DPain run folder or PyTorch checkpoint file")
  p.add_argument("--pretrained_checkpoint", default="best",
                 help="checkpoint of a pretrained run: best | latest | step")
  p.add_argument("--selection", default="last", choices=("last",
                                                         "inner_val"))
  p.add_argument("--references", default="sequence_start",
                 choices=unbc_source.REFERENCE_POLICIES)
  p.add_argument("--shots", type=cli_errors.positive_int, default=1)
  p.add_argument("--folds", default=None, type=_folds,
                 help="e.g. 0,1 (default: all)")
  p.add_argument("--image_size", type=cli_errors.positive_int, default=None)
  return p


def _folds(text: str) -> list[int]:
  """'0,1' -> [0, 1]; argparse reports a bad list in one line."""
  try:
    folds = [int(x) for x in text.split(",")]
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"expected fold numbers like 0,1, got {text!r}") from None
  if not folds or min(folds) < 0:
    raise argparse.ArgumentTypeError(
        f"fold numbers must be >= 0, got {text!r}")
  return folds


def _which(text: str) -> str | int:
  """'best' | 'latest' | a step number (a checkpoint to read)."""
  return int(text) if text.isdigit() else text


def cv_main(a) -> int:
  from jaxpain.eval import crossval  # noqa: PLC0415

  cli_errors.check_output_dir(a.out, "--out")
  config = config_lib.load_config_file(a.config)
  opts = crossval.CVOptions(
      unbc_root=a.unbc_root, out_dir=a.out, init=a.init,
      pretrained=a.pretrained, selection=a.selection,
      pretrained_checkpoint=_which(a.pretrained_checkpoint),
      test_references=a.references, num_references=a.shots,
      folds=a.folds,
      image_size=a.image_size, tfds=a.tfds, data_dir=a.data_dir)
  result = crossval.run(config, opts)
  for k, v in result["aggregate"].items():
    print(f"{k:>16}: {v['mean']:.4f} ± {v['ci95']:.4f}  (k={v['k']})")
  print(f"table: {os.path.join(a.out, 'cv_table.md')}")
  return 0


def eval_main(args) -> int:
  cli_errors.check_output_dir(args.out, "--out")
  result = evaluate.evaluate(
      args.checkpoint, args.dataset, args.split, args.out,
      data_dir=args.data_dir, unbc_root=args.unbc_root,
      references=args.references, shots=args.shots,
      calibrate_split=args.calibrate_split, which=_which(args.which),
      model_overrides=_overrides(args.model), batch_size=args.batch_size,
      image_size=args.image_size)
  print(json.dumps({k: v for k, v in result["metrics"].items()},
                   indent=2, default=str))
  print(f"report: {args.out}")
  return 0


def _bad_input_types() -> tuple[type[BaseException], ...]:
  from jaxpain.data import sources  # noqa: PLC0415

  return (sources.DataError,)


def main(argv=None) -> int:
  """The CLI; returns the exit status (2 and one line for bad input)."""
  argv = sys.argv[1:] if argv is None else list(argv)
  import absl.flags  # noqa: PLC0415 (grain reads absl flags)

  if not absl.flags.FLAGS.is_parsed():
    absl.flags.FLAGS.mark_as_parsed()
  if argv and argv[0] == "cv":
    args, body, prog = cv_parser().parse_args(argv[1:]), cv_main, f"{PROG} cv"
  else:
    args, body, prog = parser().parse_args(argv), eval_main, PROG
  return cli_errors.run(prog, lambda: body(args), verbose=args.verbose,
                        extra=_bad_input_types())


if __name__ == "__main__":
  sys.exit(main())
