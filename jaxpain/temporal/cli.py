"""`python -m jaxpain.temporal {simulate,train,sample,evaluate,job}`.

  simulate  --config C --out DATA            simulated recordings (splits)
  train     --config C --workdir W [--data DATA]      train / resume
  sample    --workdir W (--stimulus CSV | --programme P) --out AU.csv
            [--render FRAMES_DIR]            AU(t), PSPI(t) (and frames)
  evaluate  --workdir W [--full W2] --data DATA --out REPORT
  job       [--out DIR] [--seeds 0,1,2]      all of it, end to end
  released  --weights model.safetensors (--stimulus CSV | --programme P)
            --out FLAME.npz                  the authors' model, FLAME(t)

A config is `configs/temporal.py[:args]` (args as in jaxpain.temporal.
config.apply_args). Bad input ends with one line on stderr and status 2.
"""

from __future__ import annotations

import json
import sys

from jaxpain.temporal.commands import (
  UsageError,
  cmd_evaluate,
  cmd_released,
  cmd_sample,
  cmd_simulate,
  cmd_train,
  parser,
)


def cmd_job(a) -> dict:
  from jaxpain.temporal import job

  seeds = [int(s) for s in a.seeds.split(",")]
  return job.run(a.out, seeds, a.config, a.full_config)


COMMANDS = {"simulate": cmd_simulate, "train": cmd_train,
            "sample": cmd_sample, "evaluate": cmd_evaluate, "job": cmd_job,
            "released": cmd_released}


def main(argv=None) -> int:
  a = parser().parse_args(argv)
  import absl.flags  # grain reads absl flags (stack.md §7)

  absl.flags.FLAGS.mark_as_parsed()
  from jaxpain.train.checkpoint import CheckpointError

  try:
    out = COMMANDS[a.command](a)
  except (UsageError, ValueError, FileNotFoundError, CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(json.dumps(out, indent=1, default=str))
  return 0
