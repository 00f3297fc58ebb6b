"""Training: loss goes down a little, checkpoints resume to the same state."""

import os

import jax
import numpy as np

from jaxpain.temporal import train
from tests.jaxpain.temporal.conftest import tiny_config


def _params(workdir):
  net, _, info = train.load_model(workdir, ema=False)
  from flax import nnx

  leaves = jax.tree.leaves(nnx.state(net))
  return info["step"], [np.asarray(x) for x in leaves]


def test_train_writes_model_and_checkpoints(tiny_run):
  workdir, result = tiny_run
  assert result["step"] == 300 and np.isfinite(result["train_loss"])
  assert np.isfinite(result["val_loss"])
  assert os.path.isfile(os.path.join(workdir, "metrics.jsonl"))
  net, scfg, info = train.load_model(workdir)
  assert info["step"] == 300 and scfg.context == 2
  assert net.norm.num_aus == 13


def test_resume_gives_the_uninterrupted_result(tiny_data, tiny_run,
                                               tmp_path):
  """Stop at step 100 (a checkpoint), resume to 300: the same parameters
  as the uninterrupted run, so the resumed run saw the same batches."""
  workdir = str(tmp_path / "resumed")
  config = tiny_config(tiny_data)
  first = train.train(config, workdir, stop_at=100)
  assert first["step"] == 100
  second = train.train(config, workdir)
  assert second["resumed_from"] == 100 and second["step"] == 300
  step_a, a = _params(tiny_run[0])
  step_b, b = _params(workdir)
  assert step_a == step_b == 300
  for x, y in zip(a, b, strict=True):
    np.testing.assert_array_equal(x, y)
