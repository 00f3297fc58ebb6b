"""CLI: `python -m jaxpain.train --config configs/<exp>.py[:args] --workdir D`.

Thin on purpose (style.md): flags -> config -> train_and_evaluate. Multi-host
runs pass --coordinator_address / --num_processes / --process_id (or set
config.distributed.*); every process runs the same command.

Bad input (a missing or misspelt flag, config file, config arg or
`--config.field` override, an ill-typed value, a count below its minimum,
an unwritable workdir, unusable data or checkpoints) ends the run with one
line, `python -m jaxpain.train: error: ...`, and exit status 2, before
anything is written; `--verbose` adds the traceback (synth.cli_errors).
"""

from __future__ import annotations

import json
import logging
import sys

from absl import app, flags
from ml_collections import config_flags

from synth import cli_errors

PROG = "python -m jaxpain.train"
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "experiment config file, e.g. configs/teacher.py:runlocal",
    lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "output folder (resumes)")
_COORD = flags.DEFINE_string("coordinator_address", None,
                             "host:port of process 0 (multi-host)")
_NPROC = flags.DEFINE_integer("num_processes", None, "number of processes")
_PID = flags.DEFINE_integer("process_id", None, "this process's index")
_VERBOSE = flags.DEFINE_bool("verbose", False,
                             "print the traceback of an error as well")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries(logging.Filter):
  """Drops INFO chatter of Orbax/grain (dozens of lines per save)."""

  def filter(self, record: logging.LogRecord) -> bool:
    noisy = "/orbax/" in record.pathname or "/grain/" in record.pathname
    return record.levelno >= logging.WARNING or not noisy


def _chain(error: BaseException):
  while error is not None:
    yield error
    error = error.__cause__ or error.__context__


def _flag_error(error: BaseException) -> cli_errors.UserError:
  """The one-line reason a command line (flags, config, overrides) fails."""
  chain = list(_chain(error))
  for e in chain:
    if isinstance(e, cli_errors.UserError):
      return e
  for e in chain:  # ConfigDict: KeyError("'x'\nDid you mean 'y'...")
    text = e.args[0] if e.args else ""
    if isinstance(e, KeyError) and "Did you mean" in str(text):
      return cli_errors.UserError(f"unknown config field {text}")
  first = (str(error).strip().splitlines() or [""])[0]
  inner = cli_errors.one_line(chain[-1])
  if first.startswith("flag --") and len(chain) > 1:
    return cli_errors.UserError(f"{first.split(':')[0]}: {inner}")
  return cli_errors.UserError(f"{inner} (see --helpshort)")


def _config_file(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg in ("--config", "-config") and i + 1 < len(argv):
      return argv[i + 1]
    if arg.startswith(("--config=", "-config=")):
      return arg.split("=", 1)[1]
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with one-line errors (app.run's flags_parser).

  The config file is loaded once before absl does: ml_collections reports
  a config arg's error as text, without the ConfigError that names it.
  """
  from jaxpain.train import config as config_lib

  verbose = cli_errors.wants_verbose(argv)
  try:
    spec = _config_file(argv)
    if spec:
      config_lib.load_config_file(spec)
    return flags.FLAGS(argv)
  except Exception as e:  # flags, the config file and overrides all raise
    sys.exit(cli_errors.report(PROG, e if verbose else _flag_error(e),
                               verbose=verbose))


def _bad_input_types() -> tuple[type[BaseException], ...]:
  from jaxpain.data import sources
  from jaxpain.train import trainer

  return (sources.DataError, trainer.NonFiniteLossError)


def main(argv) -> int:
  del argv
  logging.getLogger().setLevel(logging.INFO)
  for handler in logging.getLogger().handlers:
    handler.addFilter(_QuietLibraries())
  config = _CONFIG.value
  if _COORD.value:
    config.distributed.coordinator_address = _COORD.value
    config.distributed.num_processes = _NPROC.value
    config.distributed.process_id = _PID.value

  def check() -> int:  # cheap: answers bad input before the heavy imports
    from jaxpain.train import config as config_lib

    cli_errors.check_output_dir(_WORKDIR.value, "--workdir")
    config_lib.validate(config)
    return 0

  def run() -> int:
    from jaxpain.train import trainer

    result = trainer.train_and_evaluate(config, _WORKDIR.value)
    print(json.dumps({k: result.get(k) for k in
                      ("status", "step", "best_step", "val", "test")},
                     default=str))
    return 0

  return (cli_errors.run(PROG, check, verbose=_VERBOSE.value)
          or cli_errors.run(PROG, run, verbose=_VERBOSE.value,
                            extra=_bad_input_types()))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
