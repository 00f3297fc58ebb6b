"""CLI: compile the trainer's train step for a TPU pod, on this machine.

  python -m jaxpain.aot --config configs/baseline.py:variant=L/16 \\
      --topology v5p-128 --batch 512
  python -m jaxpain.aot sweep --out docs/aot      # the docs/benchmarks table
  python -m jaxpain.aot table --out docs/aot      # the tables again

Thin on purpose: the logic is in jaxpain.aot.{compile,analysis,runner}.
Results are cached as JSON under --out; a rerun reuses them (--force
recompiles). Needs libtpu (scripts/setup_env.sh installs it).
"""

from __future__ import annotations

import argparse
import logging
import sys

from jaxpain.aot import chips, report, runner, sweep

_FAIL = 2


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m jaxpain.aot",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("command", nargs="?", default="compile",
                 choices=("compile", "sweep", "table"))
  p.add_argument("--config", action="append",
                 help="config file[:args], repeatable (compile); default "
                 "the three train steps (teacher, distilled, student)")
  p.add_argument("--topology", action="append",
                 help=f"repeatable; known: {', '.join(chips.TOPOLOGIES)}")
  p.add_argument("--batch", type=int, default=None,
                 help="global batch (default: the config's)")
  p.add_argument("--source_size", type=int, default=256,
                 help="side of the stored uint8 images (3dpain: 256)")
  p.add_argument("--out", default="aot_results",
                 help="folder for the per-case JSON files")
  p.add_argument("--force", action="store_true", help="ignore the cache")
  p.add_argument("--reanalyse", action="store_true",
                 help="table: re-read the stored HLO of every case first")
  p.add_argument("--no_augment_cost", action="store_true",
                 help="skip compiling the augmentation alone")
  p.add_argument("--variants", default=",".join(sweep.VARIANTS),
                 help="sweep: model sizes")
  return p.parse_args(argv)


DEFAULT_CONFIGS = ("configs/teacher.py", "configs/student_distill.py",
                   "configs/baseline.py")


def main(argv=None) -> int:
  a = parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  if a.command == "table":
    if a.reanalyse:
      logging.info("re-read %d stored HLO files",
                   runner.reanalyse_all(a.out))
    print(report.sweep_table(a.out), report.cases_table(a.out), sep="\n\n")
    return 0
  if a.command == "sweep":
    sweep.run(a.out, a.variants.split(","),
              a.topology or list(sweep.TOPOLOGIES), a.source_size)
    print(report.sweep_table(a.out))
    return 0
  failed = False
  for topology in a.topology or ["v5e-16"]:
    for config in a.config or DEFAULT_CONFIGS:
      try:
        chips.get(topology)
        batch = a.batch or runner.aot_compile.load_config(config).batch_size
        case = runner.Case(config, topology, batch, a.source_size,
                           not a.no_augment_cost)
        result = runner.run_case(case, a.out, a.force)
        print(report.case_text(result), flush=True)
        runner.require_fit(result)
      except (chips.TopologyError, runner.OutOfMemory, ValueError,
              FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        failed = True
  return _FAIL if failed else 0


if __name__ == "__main__":
  sys.exit(main())
