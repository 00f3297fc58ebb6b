"""Training: the sharded teacher-student trainer and its entry points.

  train_and_evaluate(config, workdir) -> results dict   (resumes by itself)
  predict(config, workdir, split) -> per-example predictions + metrics
  python -m jaxpain.train --config configs/<exp>.py[:args] --workdir DIR

The names are imported on first use (PEP 562), so that `jaxpain.train.config`
(what configs/*.py import) and the CLI's flag checks do not pay for jax,
flax, orbax and grain: a mistyped command line is answered in a second.
"""

from __future__ import annotations

import importlib

_LAZY = {"predict": "jaxpain.train.evaluate",
         "NonFiniteLossError": "jaxpain.train.trainer",
         "train_and_evaluate": "jaxpain.train.trainer"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
