"""CLI: `python -m jaxpain.train --config configs/<exp>.py[:args] --workdir D`.

Thin on purpose (style.md): flags -> config -> train_and_evaluate. Multi-host
runs pass --coordinator_address / --num_processes / --process_id (or set
config.distributed.*); every process runs the same command.
"""

from __future__ import annotations

import json
import logging

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "experiment config file, e.g. configs/teacher.py:runlocal",
    lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "output folder (resumes)")
_COORD = flags.DEFINE_string("coordinator_address", None,
                             "host:port of process 0 (multi-host)")
_NPROC = flags.DEFINE_integer("num_processes", None, "number of processes")
_PID = flags.DEFINE_integer("process_id", None, "this process's index")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries(logging.Filter):
  """Drops INFO chatter of Orbax/grain (dozens of lines per save)."""

  def filter(self, record: logging.LogRecord) -> bool:
    noisy = "/orbax/" in record.pathname or "/grain/" in record.pathname
    return record.levelno >= logging.WARNING or not noisy


def main(argv):
  del argv
  logging.getLogger().setLevel(logging.INFO)
  for handler in logging.getLogger().handlers:
    handler.addFilter(_QuietLibraries())
  config = _CONFIG.value
  if _COORD.value:
    config.distributed.coordinator_address = _COORD.value
    config.distributed.num_processes = _NPROC.value
    config.distributed.process_id = _PID.value
  from jaxpain.train import trainer

  result = trainer.train_and_evaluate(config, _WORKDIR.value)
  print(json.dumps({k: result.get(k) for k in
                    ("status", "step", "best_step", "val", "test")},
                   default=str))


if __name__ == "__main__":
  app.run(main)
