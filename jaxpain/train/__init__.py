"""Training: the sharded teacher-student trainer and its entry points.

  train_and_evaluate(config, workdir) -> results dict   (resumes by itself)
  predict(config, workdir, split) -> per-example predictions + metrics
  python -m jaxpain.train --config configs/<exp>.py[:args] --workdir DIR
"""

from jaxpain.train.evaluate import predict
from jaxpain.train.trainer import NonFiniteLossError, train_and_evaluate

__all__ = ["NonFiniteLossError", "predict", "train_and_evaluate"]
