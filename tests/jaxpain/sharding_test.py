"""jaxpain.sharding: activation layout constraint, presets, mesh shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxpain import sharding as shd
from jaxpain.train import config as config_lib

AXES = ("data", "fsdp", "tensor")
RULES = (("batch", ("data", "fsdp")), ("embed", "fsdp"))


def _layout(mesh, x, fn):
  with shd.mesh_context(mesh, RULES):
    return jax.jit(fn)(x).sharding


def test_constrain_batch_splits_rows_and_keeps_the_rest_whole():
  mesh = shd.create_mesh((1, 4, 2), AXES, jax.devices()[:8])
  x = jnp.ones((8, 6, 16))
  # Without the constraint the layout follows the inputs / weights; with
  # it the rows go over ('data', 'fsdp') (size-1 'data' dropped).
  sh = _layout(mesh, x, lambda x: shd.constrain_batch(x * 2.0))
  assert sh.spec == P(("fsdp",))
  assert sh.shard_shape(x.shape) == (2, 6, 16)
  # A batch the axes do not divide stays as it is; outside a mesh, no-op.
  odd = jnp.ones((3, 4))
  assert _layout(mesh, odd, shd.constrain_batch).shard_shape((3, 4)) == (
      3, 4)
  np.testing.assert_array_equal(shd.constrain_batch(odd), odd)


@pytest.mark.parametrize("name, variant, shape", [
    ("dp", "S/16", (-1, 1, 1)), ("fsdp", "L/16", (1, -1, 1)),
    ("fsdp_tp", "L/16", (1, -1, 4)), ("fsdp_tp", "S/16", (1, -1, 2))])
def test_sharding_presets_set_the_mesh(name, variant, shape):
  c = config_lib.load_config_file(
      f"configs/baseline.py:variant={variant},sharding={name}")
  assert c.sharding == name and tuple(c.mesh.shape) == shape


def test_configs_default_to_the_choice_per_size():
  for variant, name in config_lib.DEFAULT_SHARDING.items():
    c = config_lib.load_config_file(f"configs/teacher.py:variant={variant}")
    assert c.sharding == name
    assert c.model.patch_size == int(variant.split("/")[1])
  with pytest.raises(config_lib.ConfigError, match="sharding"):
    config_lib.load_config_file("configs/baseline.py:sharding=zero3")
