"""Fixtures shared by the input-pipeline tests (tests/jaxpain/data)."""

import jax
import pytest

from jaxpain import sharding as shd


@pytest.fixture(scope="module")
def sharding():
  """The batch sharding of a one-device mesh."""
  mesh = shd.create_mesh((1, 1, 1), ("data", "fsdp", "tensor"),
                         jax.devices()[:1])
  return shd.batch_sharding(mesh, ("data", "fsdp"))
