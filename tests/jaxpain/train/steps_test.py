"""The sharded train step: same numbers on every mesh, state born sharded."""

import functools

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxpain import sharding as shd
from jaxpain.data import pipeline
from jaxpain.train import evaluate, state, steps
from tests.jaxpain.train.tiny_model import tiny_config


@functools.cache
def _run(shape, num_steps=3):
  """Trains the tiny model `num_steps` steps on a mesh of `shape`.

  Returns (losses, params before, params after, setup). Cached: several
  tests read the same run, each run costs a compile.
  """
  config = tiny_config()
  n = int(np.prod(shape))
  config.mesh.shape = shape
  mesh = shd.create_mesh(shape, config.mesh.axes, jax.devices()[:n])
  setup = state.create(config, mesh, total_steps=10)
  before = state.host_params(setup)
  data = evaluate.open_split(config, "train")
  sh = shd.batch_sharding(mesh, config.batch_axes)
  spec = pipeline.InputSpec(fields=("image", "neutral"),
                            neutral_mode="random_view", seed=config.seed)
  it = pipeline.GlobalBatches(pipeline.train_dataset(
      data.source, data.index, spec, config.batch_size, sh), sh,
      config.batch_size)
  with shd.mesh_context(mesh, setup.parts.rules):
    step = steps.make_train_step(config, setup, mesh)
    losses = []
    for _ in range(num_steps):
      setup.train, m = step(setup.train, setup.consts, None, next(it))
      losses.append(float(m["loss"]))
  return losses, before, state.host_params(setup), setup


@pytest.mark.parametrize("shape", [(8, 1, 1), (2, 2, 2), (1, 4, 2)])
def test_sharded_step_matches_single_device(shape):
  ref_losses, ref_before, ref_params, _ = _run((1, 1, 1))
  losses, before, params, _ = _run(shape)
  for k, v in ref_before.items():  # same initialisation, whatever the mesh
    np.testing.assert_array_equal(before[k], v, err_msg=k)
  np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
  assert ref_losses[-1] != ref_losses[0]  # it trained
  for k, v in ref_params.items():
    np.testing.assert_allclose(params[k], v, rtol=1e-5, atol=1e-6,
                               err_msg=k)


def test_parameters_and_moments_are_born_sharded():
  setup = _run((1, 4, 2))[3]
  w1 = setup.train["params"]["head"]["w1"]
  assert w1.sharding.spec == P("fsdp", "tensor")
  assert w1.addressable_shards[0].data.shape == (16 // 4, 32 // 2)
  # Adam moments follow their parameter's layout.
  mu = [x for p, x in jax.tree_util.tree_flatten_with_path(
      setup.train["opt_state"])[0] if ".mu" in jax.tree_util.keystr(p)
        and "w1" in jax.tree_util.keystr(p)]
  assert mu and all(m.sharding.spec == P("fsdp", "tensor") for m in mu)
  # The frozen base is sharded too ('patch' has no rule: replicated dim).
  assert setup.consts["frozen"]["embed"].sharding.spec == P(None, "fsdp")


def test_frozen_params_stay_and_lora_moves_at_a_tenth_of_the_lr():
  _, before, after, _ = _run((1, 1, 1))
  np.testing.assert_array_equal(after["frozen/embed"], before["frozen/embed"])
  assert not np.allclose(after["params/head/w1"], before["params/head/w1"])
  # Adam's first steps move each weight by about lr: LoRA's lr is 0.1 x.
  d_lora = np.abs(after["params/lora/lora_a"] - before["params/lora/lora_a"])
  d_head = np.abs(after["params/head/w1"] - before["params/head/w1"])
  assert 0 < d_lora.max() < 0.3 * d_head.max()
