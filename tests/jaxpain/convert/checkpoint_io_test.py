"""Checkpoint reading/writing and every bad-file error."""

import os
import pickle
import zipfile

import ml_dtypes
import numpy as np
import pytest

from jaxpain import convert
from jaxpain.convert import CheckpointError
from tests.jaxpain.models.builders import config, random_state_dict


@pytest.fixture(scope='module')
def sd():
  return random_state_dict(config(), seed=1)


def test_safetensors_round_trip_with_bf16(tmp_path):
  state = {'a': np.arange(6, dtype=np.float32).reshape(2, 3),
           'b': np.array([1.5, -2.0], ml_dtypes.bfloat16),
           'c': np.array(7, np.int64)}
  path = tmp_path / 'x.safetensors'
  convert.write_state_dict(state, path)
  back = convert.read_state_dict(path)
  assert set(back) == set(state)
  for k in state:
    assert back[k].dtype == state[k].dtype
    np.testing.assert_array_equal(back[k], state[k])
  from safetensors.numpy import load_file  # the reference reader agrees
  np.testing.assert_array_equal(load_file(path)['a'], state['a'])
  assert not [p for p in os.listdir(tmp_path) if p.startswith('.tmp')]


def test_missing_and_foreign_files_are_rejected(tmp_path):
  with pytest.raises(CheckpointError, match='no such file'):
    convert.read_state_dict(tmp_path / 'nope.ckpt')
  junk = tmp_path / 'junk.ckpt'
  junk.write_bytes(b'definitely not a checkpoint' * 10)
  with pytest.raises(CheckpointError,
                     match='neither a torch zip checkpoint nor a safetensors'):
    convert.read_state_dict(junk)
  other_zip = tmp_path / 'other.pt'
  with zipfile.ZipFile(other_zip, 'w') as z:
    z.writestr('readme.txt', 'hello')
  with pytest.raises(CheckpointError, match='not a torch.save file'):
    convert.read_state_dict(other_zip)


def test_truncated_safetensors_is_rejected(tmp_path):
  path = tmp_path / 'x.safetensors'
  convert.write_state_dict({'w': np.ones((64, 64), np.float32)}, path)
  data = path.read_bytes()
  path.write_bytes(data[:-100])
  with pytest.raises(CheckpointError, match='truncated'):
    convert.read_state_dict(path)
  path.write_bytes(b'\xff' * 8 + data[8:])
  with pytest.raises(CheckpointError, match='header'):
    convert.read_state_dict(path)


def test_format_is_told_by_content_not_name(tmp_path):
  state = {'w': np.arange(4, dtype=np.float32)}
  safetensors_named_pt = tmp_path / 'weights.pt'
  convert.write_state_dict(state, tmp_path / 'x.safetensors')
  os.replace(tmp_path / 'x.safetensors', safetensors_named_pt)
  np.testing.assert_array_equal(
    convert.read_state_dict(safetensors_named_pt)['w'], state['w'])
  pytest.importorskip('torch')
  zip_named_safetensors = tmp_path / 'model.safetensors'
  convert.write_state_dict(state, tmp_path / 'x.ckpt')
  os.replace(tmp_path / 'x.ckpt', zip_named_safetensors)
  np.testing.assert_array_equal(
    convert.read_state_dict(zip_named_safetensors)['w'], state['w'])


def test_failed_write_leaves_nothing_behind(tmp_path):
  path = tmp_path / 'x.safetensors'
  with pytest.raises(CheckpointError, match='not storable'):
    convert.write_state_dict({'w': np.array(['a'])}, path)
  assert os.listdir(tmp_path) == []


def test_partial_file_names_missing_keys(sd):
  part = {k: v for k, v in sd.items() if 'blocks.0.attn.proj' not in k}
  with pytest.raises(CheckpointError) as e:
    convert.vitpain_from_checkpoint(config(), part)
  msg = str(e.value)
  assert 'missing keys' in msg
  assert 'vit_model.base_model.model.blocks.0.attn.proj.base_layer.weight' \
    in msg
  assert 'unexpected' not in msg and 'shape' not in msg


def test_wrong_model_names_unexpected_and_mismatched_keys(sd):
  extra = {**sd, 'vit_model.base_model.model.head.weight': np.zeros(3)}
  with pytest.raises(CheckpointError, match=r'unexpected keys.*head\.weight'):
    convert.vitpain_from_checkpoint(config(), extra)
  bigger = random_state_dict(config(variant='Ti/16'))
  with pytest.raises(CheckpointError) as e:
    convert.vitpain_from_checkpoint(config(), bigger)
  msg = str(e.value)
  assert 'shape mismatches' in msg and 'au_queries: file (6, 64)' in msg
  assert 'unexpected keys' in msg and 'blocks.1.' in msg
  no_neutral = config(use_neutral=False)
  with pytest.raises(CheckpointError, match='neutral_encoder'):
    convert.vitpain_from_checkpoint(no_neutral, sd)
  with pytest.raises(CheckpointError, match='missing keys'):
    convert.load_timm_backbone(
      convert.vitpain_from_checkpoint(config(), sd), sd)


def test_differing_bases_need_separate_storage(sd):
  k = 'neutral_encoder.base_model.model.blocks.0.mlp.fc1.weight'
  changed = {**sd, k: sd[k] + 1.0}
  with pytest.raises(CheckpointError, match='shared_base=False'):
    convert.vitpain_from_checkpoint(config(), changed)
  m = convert.vitpain_from_checkpoint(config(shared_base=False), changed)
  out = convert.export_vitpain(m)
  assert all(np.array_equal(out[k2], changed[k2]) for k2 in changed)


def test_failed_load_leaves_model_untouched(sd):
  m = convert.vitpain_from_checkpoint(config(), sd)
  before = convert.export_vitpain(m)
  bad = {**random_state_dict(config(), seed=5)}
  bad.pop('au_head.bias')
  with pytest.raises(CheckpointError):
    convert.load_vitpain(m, bad)
  after = convert.export_vitpain(m)
  assert all(np.array_equal(before[k], after[k]) for k in before)


class _Payload:
  """Pickles to a call of os.system: what a malicious checkpoint does."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f'touch {self.marker}',))


def _torch_style_zip(path, obj):
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr('archive/data.pkl', pickle.dumps(obj, protocol=2))
    z.writestr('archive/version', '3\n')


def test_malicious_pickle_never_runs(tmp_path):
  marker = tmp_path / 'pwned'
  path = tmp_path / 'evil.ckpt'
  _torch_style_zip(path, {'state_dict': {'w': _Payload(marker)}})
  with pytest.raises(CheckpointError, match='unsupported types'):
    convert.read_state_dict(path)
  assert not marker.exists()
  _torch_style_zip(path, _Payload(marker))
  with pytest.raises(CheckpointError, match='not a dict'):
    convert.read_state_dict(path)
  assert not marker.exists()


def test_torch_files_read_exactly_without_torch_load(tmp_path):
  torch = pytest.importorskip('torch')
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  tensors = {
    'plain': torch.randn(3, 5),
    'transposed': base.t(),  # non-contiguous view
    'slice': base[1:3, 2:],  # offset into a shared storage
    'bf16': torch.randn(4, dtype=torch.bfloat16),
    'int': torch.tensor([1, -2, 3], dtype=torch.int64),
    'scalar': torch.tensor(2.5),
    'empty': torch.zeros(0, 3),
    'param': torch.nn.Parameter(torch.ones(2)),
  }
  ckpt = {
    'epoch': 3, 'state_dict': tensors,
    'optimizer_states': [{'state': {0: {'exp_avg': torch.ones(2)}}}],
    'hyper_parameters': {'lr': 1e-4, 'args': __import__('argparse')
                         .Namespace(x=1)},
  }
  path = tmp_path / 'lightning.ckpt'
  torch.save(ckpt, path)
  back = convert.read_state_dict(path)
  assert set(back) == set(tensors)
  for k, t in tensors.items():
    ref = t.detach().float().numpy() if k == 'bf16' else t.detach().numpy()
    got = back[k].astype(np.float32) if k == 'bf16' else back[k]
    assert got.shape == tuple(t.shape)
    np.testing.assert_array_equal(got, ref, err_msg=k)
  legacy = tmp_path / 'legacy.pt'
  torch.save(tensors, legacy, _use_new_zipfile_serialization=False)
  with pytest.raises(CheckpointError, match='legacy'):
    convert.read_state_dict(legacy)
