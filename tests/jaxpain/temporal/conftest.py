"""Shared fixtures: a tiny simulated dataset and one tiny training run.

Built once for this test package and reused by the train, evaluate, drift
and CLI tests. The session's persistent XLA compilation cache
(tests/conftest.py) compiles every program (init, train step, sampler
chunk) once, however many runs and rollouts use it.
"""

import os

import pytest

from jaxpain.temporal import config as config_lib
from jaxpain.temporal import data as data_lib

# The runlocal config: the tiny model, 12 train subjects of 40 s.
TINY_ARGS = {"runlocal": True}


def tiny_config(data_dir: str, **overrides):
  c = config_lib.base_config()
  config_lib.apply_args(c, dict(TINY_ARGS, **overrides))
  c.data.dir = data_dir
  return c


@pytest.fixture(scope="package")
def tiny_data(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("temporal_data"))
  s = tiny_config(root).simulate
  data_lib.simulate_splits(root, 0, {"train": s.train, "val": s.val,
                                     "test": s.test}, s.programmes,
                           s.duration_s, s.test_duration_s)
  return root


@pytest.fixture(scope="package")
def tiny_run(compile_cache, tiny_data, tmp_path_factory):
  """The runlocal model (300 steps); (workdir, train result)."""
  from jaxpain.temporal import train

  workdir = str(tmp_path_factory.mktemp("temporal_run"))
  result = train.train(tiny_config(tiny_data), workdir)
  assert os.path.isfile(os.path.join(workdir, "model.json"))
  return workdir, result
