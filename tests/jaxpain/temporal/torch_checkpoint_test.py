"""The PainDiffusion release layout on top of the shared torch-file reader.

The reader itself (safety, formats, bad input) is tested in
tests/jaxpain/convert/torch_files_test.py; here only what the release adds.
"""

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from jaxpain.convert import torch_files  # noqa: E402
from jaxpain.temporal import torch_checkpoint as tc  # noqa: E402

CONFIG = {'model': {'channels': [64, 128], 'dropout': 0.1, 'norm': None,
                    'causal': True, 'name': 'unet'}, 'lr': 1e-4, 'tags': []}


def test_release_reads_as_state_dict_and_config(tmp_path):
  module = torch.nn.Sequential(torch.nn.Conv1d(3, 4, 3), torch.nn.GroupNorm(
    2, 4), torch.nn.Linear(5, 2))
  path = tmp_path / 'model.safetensors'  # the release's misleading name
  torch.save({'state_dict': module.state_dict(), 'config': CONFIG}, path)
  state, config = tc.load_paindiffusion_checkpoint(path)
  assert type(state) is dict and config == CONFIG
  assert list(state) == list(module.state_dict())
  for name, t in module.state_dict().items():
    np.testing.assert_array_equal(state[name], t.numpy())
  assert tc.CheckpointError is torch_files.CheckpointError


def test_a_real_safetensors_file_is_not_the_release(tmp_path):
  from safetensors.torch import save_file

  path = tmp_path / 'model.safetensors'
  save_file({'w': torch.ones(2)}, str(path))
  with pytest.raises(tc.CheckpointError, match='holds no YAML config'):
    tc.load_paindiffusion_checkpoint(path)


@pytest.mark.parametrize('saved, message', [
  ({'state_dict': {'w': torch.ones(1)}}, "'state_dict' and 'config'"),
  ({'state_dict': {'w': [1.0]}, 'config': {}}, 'not named tensors'),
  ([torch.ones(1)], "'state_dict' and 'config'"),
])
def test_release_layout_is_checked(tmp_path, saved, message):
  path = tmp_path / 'model.safetensors'
  torch.save(saved, path)
  with pytest.raises(tc.CheckpointError, match=message):
    tc.load_paindiffusion_checkpoint(path)
