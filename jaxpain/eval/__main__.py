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


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m jaxpain.eval",
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
  p.add_argument("--shots", type=int, default=1,
                 help="neutral references per frame (multi-shot)")
  p.add_argument("--calibrate_split", default=None,
                 help="split whose predictions pick the F1 thresholds")
  p.add_argument("--which", default="best",
                 help="run checkpoint: best | latest | a step number")
  p.add_argument("--model", default=None,
                 help="PyTorch files only: ViTPainConfig overrides, e.g. "
                 "variant=B/16,official_compat=false")
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--image_size", type=int, default=None,
                 help="resize UNBC folder images on the host (default: "
                 "stored size)")
  return p


def cv_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m jaxpain.eval cv",
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
  p.add_argument("--shots", type=int, default=1)
  p.add_argument("--folds", default=None, help="e.g. 0,1 (default: all)")
  p.add_argument("--image_size", type=int, default=None)
  return p


def load_config(spec: str):
  """'configs/finetune.py:runlocal' -> get_config('runlocal')."""
  from jaxpain.train import config as config_lib  # noqa: PLC0415

  return config_lib.load(spec)


def cv_main(argv) -> int:
  from jaxpain.eval import crossval  # noqa: PLC0415

  a = cv_parser().parse_args(argv)
  opts = crossval.CVOptions(
      unbc_root=a.unbc_root, out_dir=a.out, init=a.init,
      pretrained=a.pretrained, selection=a.selection,
      pretrained_checkpoint=(int(a.pretrained_checkpoint)
                             if a.pretrained_checkpoint.isdigit()
                             else a.pretrained_checkpoint),
      test_references=a.references, num_references=a.shots,
      folds=None if a.folds is None else [int(x) for x in a.folds.split(",")],
      image_size=a.image_size, tfds=a.tfds, data_dir=a.data_dir)
  result = crossval.run(load_config(a.config), opts)
  for k, v in result["aggregate"].items():
    print(f"{k:>16}: {v['mean']:.4f} ± {v['ci95']:.4f}  (k={v['k']})")
  print(f"table: {os.path.join(a.out, 'cv_table.md')}")
  return 0


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  import absl.flags  # noqa: PLC0415 (grain reads absl flags)

  if not absl.flags.FLAGS.is_parsed():
    absl.flags.FLAGS.mark_as_parsed()
  if argv and argv[0] == "cv":
    return cv_main(argv[1:])
  args = parser().parse_args(argv)
  which = int(args.which) if args.which.isdigit() else args.which
  result = evaluate.evaluate(
      args.checkpoint, args.dataset, args.split, args.out,
      data_dir=args.data_dir, unbc_root=args.unbc_root,
      references=args.references, shots=args.shots,
      calibrate_split=args.calibrate_split, which=which,
      model_overrides=_overrides(args.model), batch_size=args.batch_size,
      image_size=args.image_size)
  print(json.dumps({k: v for k, v in result["metrics"].items()},
                   indent=2, default=str))
  print(f"report: {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
