"""The torch-free checkpoint reader: exact round trips, refusals, bad input.

Files are written by the real `torch.save` / safetensors into tmp_path;
malicious files are pickles that would create a marker file if any code in
them ran, so each refusal also asserts that the marker does not exist.
"""

import builtins
import collections
import io
import os
import pickle
import subprocess
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from jaxpain.temporal import torch_checkpoint as tc  # noqa: E402


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
  out = tc.read_torch_file(path)
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
  path = tmp_path / 'model.safetensors'  # the release's misleading name
  torch.save({'state_dict': module.state_dict(), 'config': CONFIG}, path)
  state, config = tc.load_paindiffusion_checkpoint(path)
  assert type(state) is dict and config == CONFIG
  assert list(state) == list(module.state_dict())
  for name, t in module.state_dict().items():
    np.testing.assert_array_equal(state[name], t.numpy())


def test_big_endian_archive_is_swapped(tmp_path):
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
  out = tc.read_torch_file(big)
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
  }


@pytest.mark.parametrize('protocol', [2, 4])  # GLOBAL, STACK_GLOBAL
@pytest.mark.parametrize('attack', ['os.system', 'builtins.eval',
                                    'builtins.exec', 'subprocess.Popen'])
def test_code_in_a_torch_zip_is_refused_and_never_runs(
    tmp_path, attack, protocol):
  marker = str(tmp_path / 'pwned')
  path = tmp_path / 'model.safetensors'
  torch.save({'state_dict': {'w': torch.ones(2)}, 'config': CONFIG,
              'x': _marker_payloads(marker)[attack]}, path,
             pickle_protocol=protocol)
  with pytest.raises(tc.CheckpointError, match='refusing to load') as e:
    tc.read_torch_file(path)
  assert str(path) in str(e.value) and '\n' not in str(e.value)
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
  with pytest.raises(tc.CheckpointError, match=f'refusing to load {refused}'):
    tc.read_torch_file(path)


def test_bare_pickle_is_refused_without_running(tmp_path):
  marker = str(tmp_path / 'pwned')
  path = tmp_path / 'model.safetensors'
  path.write_bytes(pickle.dumps(_Evil(os.system, f'touch {marker}'), 2))
  with pytest.raises(tc.CheckpointError, match='legacy .* bare pickle'):
    tc.read_torch_file(path)
  assert not os.path.exists(marker)


def test_tensor_subclass_and_whole_module_are_refused(tmp_path):
  path = tmp_path / 'sub.pt'
  torch.save({'t': torch.ones(2).as_subclass(_SubTensor)}, path)
  with pytest.raises(tc.CheckpointError, match='_rebuild_from_type_v2'):
    tc.read_torch_file(path)
  torch.save(torch.nn.Linear(2, 2), path)
  with pytest.raises(tc.CheckpointError, match='torch.nn.modules.linear'):
    tc.read_torch_file(path)


@pytest.mark.parametrize('pkl', [
  # BUILD on a whitelisted function, on a storage marker, on a class state.
  b'\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}X\x01\x00\x00\x00aK\x01sb.',
  b'\x80\x02ctorch\nFloatStorage\nN}X\x01\x00\x00\x00aK\x01s\x86b.',
  b'\x80\x02ccollections\nOrderedDict\n)R}X\x01\x00\x00\x00aK\x01sb.',
  b'\x80\x02ctorch\nFloatStorage\n)R.',  # REDUCE of a non-callable
], ids=['function', 'marker', 'OrderedDict', 'reduce-marker'])
def test_the_reader_cannot_be_altered_by_build(tmp_path, pkl):
  with pytest.raises(tc.CheckpointError, match='data.pkl|OrderedDict'):
    tc.read_torch_file(_zip(tmp_path / 'x.pt', pkl))
  path = tmp_path / 'ok.pt'
  torch.save(collections.OrderedDict(w=torch.arange(3.0)), path)
  np.testing.assert_array_equal(tc.read_torch_file(path)['w'], [0, 1, 2])


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


def test_crafted_views_are_bounded(tmp_path):
  ok = tc.read_torch_file(_crafted_tensor(  # the device is irrelevant
    tmp_path / 'a.pt', 1, (3,), (1,), location='cuda:0'))
  assert ok['t'].shape == (3,) and ok['t'].dtype == np.float32
  with pytest.raises(tc.CheckpointError, match='reads past its storage'):
    tc.read_torch_file(_crafted_tensor(tmp_path / 'b.pt', 0, (2, 3), (3, 1)))
  with pytest.raises(tc.CheckpointError, match='max_bytes'):  # stride 0
    tc.read_torch_file(_crafted_tensor(
      tmp_path / 'c.pt', 0, (1 << 20, 1 << 20), (0, 0)))
  with pytest.raises(tc.CheckpointError, match='declares 16'):
    tc.read_torch_file(_crafted_tensor(tmp_path / 'd.pt', 0, (1,), (1,),
                                       nbytes=8))


def test_deflate_bomb_is_refused_unread(tmp_path):
  path = tmp_path / 'bomb.pt'
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr('archive/data.pkl', bytes(8 << 20))  # 8 MiB in ~8 KiB
  assert path.stat().st_size < 100_000
  with pytest.raises(tc.CheckpointError, match='max_bytes'):
    tc.read_torch_file(path, max_bytes=1 << 20)


def test_safetensors_is_read_by_content(tmp_path):
  from safetensors.torch import save_file

  tensors = {'w': torch.randn(3, 2).bfloat16(), 'b': torch.randn(4),
             'i': torch.arange(3), 'm': torch.tensor([True, False])}
  path = tmp_path / 'weights.bin'  # the name says nothing
  save_file(tensors, str(path), metadata={'format': 'pt'})
  out = tc.read_torch_file(path)
  assert out['metadata'] == {'format': 'pt'}
  assert sorted(out['state_dict']) == sorted(tensors)
  for name, t in tensors.items():
    a = out['state_dict'][name]
    assert a.dtype.name == str(t.dtype).removeprefix('torch.')
    np.testing.assert_array_equal(a.astype(_as_numpy(t).dtype), _as_numpy(t))
  with pytest.raises(tc.CheckpointError, match='holds no YAML config'):
    tc.load_paindiffusion_checkpoint(path)


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
}


@pytest.mark.parametrize('case', list(BAD))
def test_bad_input_is_one_line_and_leaves_the_file(tmp_path, case):
  make, message = BAD[case]
  path = tmp_path / 'model.safetensors'
  make(path)
  before = (path.stat().st_mtime_ns, path.read_bytes()) if (
    path.is_file()) else None
  with pytest.raises(tc.CheckpointError, match=message) as e:
    tc.read_torch_file(path)
  assert isinstance(e.value, ValueError)
  assert str(e.value).startswith(str(path)) and '\n' not in str(e.value)
  assert ';' in str(e.value)  # the problem; what to do
  if before is not None:
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


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
