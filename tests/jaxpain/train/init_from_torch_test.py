"""init_from PyTorch weights: timm DINOv3 (the base) then a ViTPain file."""

import jax
import numpy as np

from jaxpain import convert
from jaxpain import sharding as shd
from jaxpain.train import config as config_lib
from jaxpain.train import model_lib, state


def _config(seed=0, **init):
  c = config_lib.base_config()
  config_lib.apply_runlocal(c)
  c.seed = seed
  c.model.train_base = False
  c.init_from.update(init)
  return c


def test_timm_and_vitpain_files_load_into_the_sharded_state(tmp_path):
  mesh = shd.create_mesh((2, 2, 2), ("data", "fsdp", "tensor"))
  # The "released" weights: a seed-7 ViTPain exported with PyTorch names.
  other = state.create(_config(seed=7), mesh, total_steps=1)
  want = state.host_params(other)
  groups = {**other.train["params"], **other.consts}
  host = {g: shd.to_host(v) if g != "rngs" else v for g, v in groups.items()}
  model = model_lib.merge(other.parts.graphdef, host)
  timm_file = str(tmp_path / "dinov3.safetensors")
  vitpain_file = str(tmp_path / "vitpain.safetensors")
  convert.write_state_dict(convert.export_backbone(model.encoder), timm_file)
  convert.write_state_dict(convert.export_vitpain(model), vitpain_file)

  c = _config(kind="timm", path=timm_file)
  setup = state.create(c, mesh, total_steps=1)
  fresh = state.host_params(setup)
  state.load_torch_weights(setup, c, mesh)
  got = state.host_params(setup)
  base = [k for k in got if k.startswith("frozen/encoder")]
  assert base and any(not np.array_equal(got[k], fresh[k]) for k in base)
  for k in got:
    if k.startswith("params/"):  # LoRA and heads keep their own init
      np.testing.assert_array_equal(got[k], fresh[k], err_msg=k)
    elif not np.array_equal(got[k], fresh[k]):  # what changed is seed 7's
      np.testing.assert_array_equal(got[k], want[k], err_msg=k)

  c = _config(kind="vitpain", path=vitpain_file)
  info = state.load_torch_weights(setup, c, mesh)
  got = state.host_params(setup)
  assert info["loaded"] > 0
  for k, v in want.items():
    np.testing.assert_array_equal(got[k], v, err_msg=k)
  for x in jax.tree.leaves(setup.train["params"]):
    assert x.sharding.mesh.shape == mesh.shape
