"""Training: loss goes down a little, checkpoints resume to the same state."""

import os
import shutil

import jax
import jax.numpy as jnp
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
  """Resume the uninterrupted run's step-150 checkpoint (model, optimizer,
  EMA, step and grain position), as a run preempted there would: training
  on to 300 ends with bit-identical parameters, so the resumed run saw the
  same batches."""
  workdir = str(tmp_path / "resumed")
  shutil.copytree(tiny_run[0], workdir)
  shutil.rmtree(os.path.join(workdir, "checkpoints", "300"))
  os.remove(os.path.join(workdir, "metrics.jsonl"))
  result = train.train(tiny_config(tiny_data), workdir)
  assert result["resumed_from"] == 150 and result["step"] == 300
  step_a, a = _params(tiny_run[0])
  step_b, b = _params(workdir)
  assert step_a == step_b == 300
  for x, y in zip(a, b, strict=True):
    np.testing.assert_array_equal(x, y)


def test_stop_at_ends_early_with_a_checkpoint(tiny_data, tmp_path):
  config = tiny_config(tiny_data, steps=300)
  result = train.train(config, str(tmp_path / "early"), stop_at=2)
  assert result["step"] == 2
  assert train.load_model(str(tmp_path / "early"))[2]["step"] == 2


def test_velocity_loss_charges_a_seam_like_a_jump_inside_a_token():
  fs, k = 4, 2
  x0 = jnp.zeros((1, 3, fs * k))
  frames = jnp.zeros((1, 12, k))
  seam = frames.at[:, 8:].set(1.0)  # jump from frame 7 to 8: tokens 1|2
  inner = frames.at[:, 9:].set(1.0)  # jump from frame 8 to 9: inside 2
  sigma = jnp.ones((1, 3))
  loss = lambda f: train.velocity_loss(
      f.reshape(1, 3, fs * k), x0, sigma, 0.5, fs, "l2")
  np.testing.assert_allclose(loss(seam), loss(inner), rtol=1e-6)
  assert float(loss(seam)[0, 2]) > 0 and float(loss(seam)[0, 1]) == 0
  assert float(train.velocity_loss(x0, x0, sigma, 0.5, fs, "l2").max()) == 0
  # A noisy neighbour does not inherit a clean token's large weight.
  mixed = jnp.array([[1.0, 50.0, 0.002]])
  w = train.velocity_loss(seam.reshape(1, 3, fs * k), x0, mixed, 0.5, fs,
                          "l2")
  big = train.velocity_loss(seam.reshape(1, 3, fs * k), x0,
                            jnp.full((1, 3), 0.002), 0.5, fs, "l2")
  assert float(w[0, 2]) < 1e-3 * float(big[0, 2])
