"""The torch-free checkpoint reader: exact round trips, refusals, bad input.

Files are written by the real `torch.save` / safetensors into tmp_path;
malicious files are pickles that would create a marker file if any code in
them ran, so each refusal (unknown='refuse') and each placeholder
(unknown='opaque') also asserts that the marker does not exist.
"""

import argparse
import builtins
import collections
import io
import json
import os
import pickle
import subprocess
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from jaxpain.convert import torch_files as reader  # noqa: E402


class _Evil:
  """Pickles as `fn(*args)`: code that a plain unpickler would run."""

  def __init__(self, fn, *args):
    self.fn, self.args = fn, args

  def __reduce__(self):
    return self.fn, self.args


class _SubTensor(torch.Tensor):
  pass


def _tensors():
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  return {
    'f32': torch.randn(2, 3), 'f16': torch.randn(5).half(),
    'bf16': torch.randn(3, 2).bfloat16(), 'i64': torch.arange(-3, 4),
    'bool': torch.tensor([True, False, True]),
    'param': torch.nn.Parameter(torch.randn(2, 2)),
    'transposed': base.t(), 'offset_slice': base[1:, 2:],
    'shared_a': base, 'shared_b': base[2], 'zero_d': torch.tensor(3.5),
    'empty': torch.empty(0, 3), 'expanded': torch.randn(3).expand(4, 3),
    'u16': torch.arange(5).to(torch.uint16)[1:],
    'f8': torch.randn(4).to(torch.float8_e4m3fn),
    'c64': torch.randn(3, dtype=torch.complex64),
  }


def _as_numpy(t: torch.Tensor) -> np.ndarray:
  t = t.detach()
  if t.dtype in (torch.bfloat16, torch.float8_e4m3fn):
    return t.float().numpy()
  return t.to(torch.int32).numpy() if t.dtype == torch.uint16 else t.numpy()


CONFIG = {'model': {'channels': [64, 128], 'dropout': 0.1, 'norm': None,
                    'causal': True, 'name': 'unet'}, 'lr': 1e-4, 'tags': []}


def test_round_trip_matches_torch(tmp_path):
  tensors = _tensors()
  path = tmp_path / 'all.pt'
  torch.save({**tensors, 'config': CONFIG, 'size': torch.Size([2, 3]),
              'dtype': torch.float16}, path)
  out = reader.read_torch_file(path)
  assert list(out)[:len(tensors)] == list(tensors)
  for name, t in tensors.items():
    a = out[name]
    assert a.shape == tuple(t.shape), name
    assert a.dtype.name == str(t.dtype).removeprefix('torch.'), name
    assert a.flags.c_contiguous and a.flags.owndata and a.flags.writeable
    np.testing.assert_array_equal(
      a.astype(_as_numpy(t).dtype), _as_numpy(t), err_msg=name)
  assert out['config'] == CONFIG and out['size'] == (2, 3)
  assert out['dtype'] == np.float16
  out['shared_a'][2, 0] = -1.0  # copies, not views of one buffer
  assert out['shared_b'][0] == 12.0


def test_state_dict_becomes_a_plain_ordered_dict(tmp_path):
  module = torch.nn.Sequential(torch.nn.Conv1d(3, 4, 3), torch.nn.GroupNorm(
    2, 4), torch.nn.Linear(5, 2))
  path = tmp_path / 'model.safetensors'  # a torch zip: the name says nothing
  torch.save({'state_dict': module.state_dict(), 'config': CONFIG}, path)
  out = reader.read_torch_file(path)
  state = out['state_dict']
  assert type(state) is dict and out['config'] == CONFIG
  assert list(state) == list(module.state_dict())
  for name, t in module.state_dict().items():
    np.testing.assert_array_equal(state[name], t.numpy())


@pytest.mark.parametrize('unknown', ['refuse', 'opaque'])
def test_big_endian_archive_is_swapped(tmp_path, unknown):
  tensors = {'f32': torch.randn(3, 2), 'bf16': torch.randn(4).bfloat16(),
             'c64': torch.randn(2, dtype=torch.complex64)}
  little, big = tmp_path / 'le.pt', tmp_path / 'be.pt'
  torch.save(tensors, little)
  sizes = {'f32': 4, 'bf16': 2, 'c64': 4}  # complex swaps per component
  with zipfile.ZipFile(little) as src, zipfile.ZipFile(big, 'w') as dst:
    for info in src.infolist():
      data = src.read(info)
      if info.filename.endswith('/byteorder'):
        data = b'big'
      elif '/data/' in info.filename:
        key = list(tensors)[int(info.filename.rsplit('/', 1)[1])]
        data = np.frombuffer(data, f'<u{sizes[key]}').astype(
          f'>u{sizes[key]}').tobytes()
      dst.writestr(info, data)
  out = reader.read_torch_file(big, unknown=unknown)
  for name, t in tensors.items():
    np.testing.assert_array_equal(out[name].astype(_as_numpy(t).dtype),
                                  _as_numpy(t))
    assert out[name].dtype.isnative


def _marker_payloads(marker: str):
  return {
    'os.system': _Evil(os.system, f'touch {marker}'),
    'builtins.eval': _Evil(builtins.eval, f'open({marker!r}, "w")'),
    'builtins.exec': _Evil(builtins.exec, f'open({marker!r}, "w")'),
    'subprocess.Popen': _Evil(subprocess.Popen, ['touch', marker]),
    # A tensor subclass whose rebuild function would be os.system.
    'torch._tensor._rebuild_from_type_v2': _Evil(
      torch._tensor._rebuild_from_type_v2, os.system, _SubTensor,
      (f'touch {marker}',), {}),
  }


ATTACKS = list(_marker_payloads('x'))


@pytest.mark.parametrize('protocol', [2, 4])  # GLOBAL, STACK_GLOBAL
@pytest.mark.parametrize('attack', ATTACKS)
def test_code_in_a_torch_zip_is_refused_and_never_runs(
    tmp_path, attack, protocol):
  marker = str(tmp_path / 'pwned')
  path = tmp_path / 'model.safetensors'
  torch.save({'state_dict': {'w': torch.ones(2)}, 'config': CONFIG,
              'x': _marker_payloads(marker)[attack]}, path,
             pickle_protocol=protocol)
  with pytest.raises(reader.CheckpointError, match='refusing to load') as e:
    reader.read_torch_file(path)
  assert str(path) in str(e.value) and '\n' not in str(e.value)
  assert not os.path.exists(marker)


@pytest.mark.parametrize('protocol', [2, 4])
@pytest.mark.parametrize('attack', ATTACKS)
def test_code_in_a_torch_zip_becomes_inert_when_opaque(
    tmp_path, attack, protocol):
  marker = str(tmp_path / 'pwned')
  path = tmp_path / 'x.ckpt'
  torch.save({'state_dict': {'w': torch.ones(2)},
              'x': _marker_payloads(marker)[attack]}, path,
             pickle_protocol=protocol)
  out = reader.read_torch_file(path, unknown='opaque')
  np.testing.assert_array_equal(out['state_dict']['w'], [1.0, 1.0])
  assert isinstance(out['x'], reader.Opaque)
  assert out['x'].name.split('.')[-1] == attack.split('.')[-1]
  assert not os.path.exists(marker)


def _zip(path, pkl: bytes, storages=None, byteorder=b'little'):
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr('archive/data.pkl', pkl)
    z.writestr('archive/byteorder', byteorder)
    for key, data in (storages or {}).items():
      z.writestr(f'archive/data/{key}', data)
  return path


@pytest.mark.parametrize('pkl, refused', [
  (b"cbuiltins\ngetattr\n(S'x'\nS'upper'\ntR.", 'builtins.getattr'),
  (b"c__builtin__\neval\n(S'1'\ntR.", '__builtin__.eval'),
  (b"(cposix\nsystem\nS'true'\no.", 'posix.system'),  # OBJ opcode
  (b"(S'true'\nios\nsystem\n.", 'os.system'),  # INST opcode
  (b'\x80\x02ctorch\ndevice\nX\x03\x00\x00\x00cpu\x85R.', 'torch.device'),
  (b'\x80\x02ctorch.nn.modules.linear\nLinear\n)\x81.', 'torch.nn.modules'),
], ids=['getattr', 'py2-eval', 'OBJ', 'INST', 'torch.device', 'NEWOBJ'])
def test_hand_made_pickles_are_refused(tmp_path, pkl, refused):
  path = _zip(tmp_path / 'x.pt', pkl)
  with pytest.raises(reader.CheckpointError,
                     match=f'refusing to load {refused}'):
    reader.read_torch_file(path)
  opaque = reader.read_torch_file(path, unknown='opaque')
  assert isinstance(opaque, reader.Opaque)
  assert opaque.name.startswith(refused)


def test_bare_pickle_is_refused_without_running(tmp_path):
  marker = str(tmp_path / 'pwned')
  path = tmp_path / 'model.safetensors'
  path.write_bytes(pickle.dumps(_Evil(os.system, f'touch {marker}'), 2))
  with pytest.raises(reader.CheckpointError, match='legacy .* bare pickle'):
    reader.read_torch_file(path)
  assert not os.path.exists(marker)


def test_tensor_subclass_and_whole_module_are_refused(tmp_path):
  path = tmp_path / 'sub.pt'
  torch.save({'t': torch.ones(2).as_subclass(_SubTensor),
              'w': torch.ones(2)}, path)
  with pytest.raises(reader.CheckpointError, match='_rebuild_from_type_v2'):
    reader.read_torch_file(path)
  out = reader.read_torch_file(path, unknown='opaque')  # never rebuilt
  assert out['t'].name == 'torch._tensor._rebuild_from_type_v2'
  np.testing.assert_array_equal(out['w'], [1.0, 1.0])
  torch.save(torch.nn.Linear(2, 2), path)
  with pytest.raises(reader.CheckpointError, match='torch.nn.modules.linear'):
    reader.read_torch_file(path)


@pytest.mark.parametrize('pkl', [
  # BUILD on a whitelisted function, on a storage marker, on a class state.
  b'\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}X\x01\x00\x00\x00aK\x01sb.',
  b'\x80\x02ctorch\nFloatStorage\nN}X\x01\x00\x00\x00aK\x01s\x86b.',
  b'\x80\x02ccollections\nOrderedDict\n)R}X\x01\x00\x00\x00aK\x01sb.',
  b'\x80\x02ctorch\nFloatStorage\n)R.',  # REDUCE of a non-callable
], ids=['function', 'marker', 'OrderedDict', 'reduce-marker'])
def test_the_reader_cannot_be_altered_by_build(tmp_path, pkl):
  with pytest.raises(reader.CheckpointError, match='data.pkl|OrderedDict'):
    reader.read_torch_file(_zip(tmp_path / 'x.pt', pkl))
  path = tmp_path / 'ok.pt'
  torch.save(collections.OrderedDict(w=torch.arange(3.0)), path)
  np.testing.assert_array_equal(reader.read_torch_file(path)['w'], [0, 1, 2])


_PID = object()


class _Rebuild:
  def __init__(self, offset, size, stride):
    self.args = offset, size, stride

  def __reduce__(self):
    return torch._utils._rebuild_tensor_v2, (
      _PID, *self.args, False, collections.OrderedDict())


def _crafted_tensor(path, offset, size, stride, numel=4, nbytes=16,
                    location='cpu'):
  """A torch zip with one float32 tensor over a storage of `numel`."""
  class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
      if obj is _PID:
        return ('storage', torch.FloatStorage, '0', location, numel)
      return None

  buf = io.BytesIO()
  Pickler(buf, 2).dump({'t': _Rebuild(offset, size, stride)})
  return _zip(path, buf.getvalue(), {'0': bytes(nbytes)})


@pytest.mark.parametrize('unknown', ['refuse', 'opaque'])
def test_crafted_views_are_bounded(tmp_path, unknown):
  def read(path):
    return reader.read_torch_file(path, unknown=unknown)

  ok = read(_crafted_tensor(  # the device is irrelevant
    tmp_path / 'a.pt', 1, (3,), (1,), location='cuda:0'))
  assert ok['t'].shape == (3,) and ok['t'].dtype == np.float32
  with pytest.raises(reader.CheckpointError, match='reads past its storage'):
    read(_crafted_tensor(tmp_path / 'b.pt', 0, (2, 3), (3, 1)))
  with pytest.raises(reader.CheckpointError, match='max_bytes'):  # stride 0
    read(_crafted_tensor(tmp_path / 'c.pt', 0, (1 << 20, 1 << 20), (0, 0)))
  with pytest.raises(reader.CheckpointError, match='declares 16'):
    read(_crafted_tensor(tmp_path / 'd.pt', 0, (1,), (1,), nbytes=8))


def test_deflate_bomb_is_refused_unread(tmp_path):
  path = tmp_path / 'bomb.pt'
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr('archive/data.pkl', bytes(8 << 20))  # 8 MiB in ~8 KiB
  assert path.stat().st_size < 100_000
  with pytest.raises(reader.CheckpointError, match='max_bytes'):
    reader.read_torch_file(path, max_bytes=1 << 20)


def test_safetensors_is_read_by_content(tmp_path):
  from safetensors.torch import save_file

  tensors = {'w': torch.randn(3, 2).bfloat16(), 'b': torch.randn(4),
             'i': torch.arange(3), 'm': torch.tensor([True, False])}
  path = tmp_path / 'weights.bin'  # the name says nothing
  save_file(tensors, str(path), metadata={'format': 'pt'})
  out = reader.read_torch_file(path)
  assert out['metadata'] == {'format': 'pt'}
  assert sorted(out['state_dict']) == sorted(tensors)
  for name, t in tensors.items():
    a = out['state_dict'][name]
    assert a.dtype.name == str(t.dtype).removeprefix('torch.')
    np.testing.assert_array_equal(a.astype(_as_numpy(t).dtype), _as_numpy(t))


def _truncated(path):
  torch.save({'w': torch.randn(64)}, path)
  path.write_bytes(path.read_bytes()[:300])


def _no_pickle(path):
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr('archive/data/0', b'1234')


def _missing_storage(path):
  torch.save({'w': torch.randn(4)}, path)
  with zipfile.ZipFile(path) as z:
    pkl = z.read(next(n for n in z.namelist() if n.endswith('data.pkl')))
  _zip(path, pkl)


def _bad_safetensors(path):
  path.write_bytes((10**6).to_bytes(8, 'little') + b'{"a": 1}')


def _overlapping_safetensors(path):
  entry = {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]}
  header = json.dumps({'a': entry, 'b': entry}).encode()
  path.write_bytes(len(header).to_bytes(8, 'little') + header + bytes(8))


BAD = {
  'missing': (lambda p: None, '(?i)no such file'),
  'directory': (lambda p: p.mkdir(), 'is a directory'),
  'empty': (lambda p: p.write_bytes(b''), r'neither .* \(empty\)'),
  'random': (lambda p: p.write_bytes(b'hello world!'), 'neither a torch'),
  'truncated zip': (_truncated, 'damaged zip archive'),
  'zip without data.pkl': (_no_pickle, '0 <archive>/data.pkl'),
  'storage missing': (_missing_storage, 'data/0 is missing'),
  'legacy torch': (lambda p: torch.save(
    {'w': torch.ones(2)}, p, _use_new_zipfile_serialization=False),
    r'legacy \(pre-1.6\)'),
  'bad safetensors': (_bad_safetensors, 'exceeds the file'),
  'overlapping safetensors': (_overlapping_safetensors, 'overlap'),
}


@pytest.mark.parametrize('unknown', ['refuse', 'opaque'])
@pytest.mark.parametrize('case', list(BAD))
def test_bad_input_is_one_line_and_leaves_the_file(tmp_path, case, unknown):
  make, message = BAD[case]
  path = tmp_path / 'model.safetensors'
  make(path)
  before = (path.stat().st_mtime_ns, path.read_bytes()) if (
    path.is_file()) else None
  with pytest.raises(reader.CheckpointError, match=message) as e:
    reader.read_torch_file(path, unknown=unknown)
  assert isinstance(e.value, ValueError)
  assert str(e.value).startswith(str(path)) and '\n' not in str(e.value)
  assert ';' in str(e.value)  # the problem; what to do
  if before is not None:
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


class _Callback:
  """A Lightning-style callback: a class of the training code's own."""

  def __init__(self):
    self.best_score, self.path = torch.tensor(0.25), 'best.ckpt'


class _AttributeDict(dict):  # as Lightning's hyper-parameter dict
  pass


class _Loops(list):
  pass


def test_opaque_reads_the_tensors_of_a_lightning_checkpoint(tmp_path):
  state = {'w': torch.randn(3, 2), 'b': torch.arange(4)}
  path = tmp_path / 'last.ckpt'
  torch.save({
    'epoch': 2, 'state_dict': state,
    'hyper_parameters': argparse.Namespace(lr=1e-3, arch='vit'),
    'hparams': _AttributeDict(lr=1e-3, w=torch.ones(1)),
    'callbacks': {_Callback: _Callback()}, 'loops': _Loops([1, 2]),
    'optimizer_states': [{'state': {0: {'exp_avg': torch.full((2,), 3.0)}}}],
  }, path)
  with pytest.raises(reader.CheckpointError,
                     match='refusing to load argparse.Namespace'):
    reader.read_torch_file(path)
  out = reader.read_torch_file(path, unknown='opaque')
  assert out['epoch'] == 2 and list(out['state_dict']) == ['w', 'b']
  for name, t in state.items():
    np.testing.assert_array_equal(out['state_dict'][name], t.numpy())
  np.testing.assert_array_equal(
    out['optimizer_states'][0]['state'][0]['exp_avg'], [3.0, 3.0])
  hp = out['hyper_parameters']
  assert isinstance(hp, reader.Opaque) and hp.name == 'argparse.Namespace'
  assert out['hparams'].name.endswith('torch_files_test._AttributeDict')
  assert out['loops'].name.endswith('_Loops')
  ((key, value),) = out['callbacks'].items()
  assert isinstance(key, reader.Opaque) and isinstance(value, reader.Opaque)
  assert key.name == value.name and key.name.endswith('_Callback')
  assert isinstance(hp(1, x=2), reader.Opaque)  # calling runs nothing
  with pytest.raises(ValueError, match='alters'):
    hp.name = 'os.system'
  with pytest.raises(ValueError, match='alters'):
    type(hp).__call__ = print


@pytest.mark.parametrize('pkl', [
  # BUILD on a placeholder class: a dict state, then a slot state.
  b'\x80\x02cargparse\nNamespace\n}X\x04\x00\x00\x00nameX\x01\x00\x00\x00xsb.',
  b'\x80\x02cargparse\nNamespace\nN}X\x04\x00\x00\x00nameK\x01s\x86b.',
], ids=['dict-state', 'slot-state'])
def test_placeholders_cannot_be_altered_by_build(tmp_path, pkl):
  with pytest.raises(reader.CheckpointError, match='data.pkl|alters'):
    reader.read_torch_file(_zip(tmp_path / 'x.pt', pkl), unknown='opaque')
  assert reader.Opaque.name == '?'


def test_placeholder_classes_count_against_max_bytes(tmp_path):
  globals_ = b''.join(b'cm\nC%d\n' % i for i in range(200))
  path = _zip(tmp_path / 'x.pt', b'\x80\x02(' + globals_ + b'l.')
  out = reader.read_torch_file(path, unknown='opaque')
  assert len({o.name for o in out}) == 200
  with pytest.raises(reader.CheckpointError, match='max_bytes'):
    reader.read_torch_file(path, unknown='opaque', max_bytes=64 << 10)
