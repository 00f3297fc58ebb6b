"""Reading and writing flat state dicts (name -> numpy array) safely.

Formats:
- `.safetensors`: an 8-byte header length, a JSON header, raw little-endian
  data. Parsed here (BF16 via ml_dtypes, which numpy lacks).
- PyTorch zip checkpoints (`torch.save` since 1.6: `.pt`, `.pth`, `.bin`,
  Lightning `.ckpt`): `*/data.pkl` plus one raw file per storage. Unpickled
  by `_SafeUnpickler`, which resolves only tensor-rebuild functions and
  containers and replaces any other global with an inert placeholder, so a
  malicious file cannot run code and no torch import is needed.

A Lightning checkpoint's weights live under 'state_dict'; `read_state_dict`
finds them.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import struct
import tempfile
import zipfile

import ml_dtypes
import numpy as np

from synth.cli_errors import UserError


class CheckpointError(UserError):
  """A checkpoint file is unreadable, or does not fit the model."""


_ST_DTYPES = {
  'F64': np.float64, 'F32': np.float32, 'F16': np.float16,
  'BF16': ml_dtypes.bfloat16, 'I64': np.int64, 'I32': np.int32,
  'I16': np.int16, 'I8': np.int8, 'U8': np.uint8, 'BOOL': np.bool_,
}
_TORCH_DTYPES = {
  'DoubleStorage': np.float64, 'FloatStorage': np.float32,
  'HalfStorage': np.float16, 'BFloat16Storage': ml_dtypes.bfloat16,
  'LongStorage': np.int64, 'IntStorage': np.int32,
  'ShortStorage': np.int16, 'CharStorage': np.int8,
  'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a flat name -> array dict from a checkpoint file.

  Args:
    path: `.safetensors`, or a PyTorch zip checkpoint (a plain state dict,
      or a dict holding one under 'state_dict', as Lightning writes).

  Returns:
    The tensors as numpy arrays (non-tensor entries dropped).

  Raises:
    CheckpointError: missing file, unknown format, or no tensors found.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise CheckpointError(f'{path}: no such file')
  with open(path, 'rb') as f:
    magic = f.read(8)
  if zipfile.is_zipfile(path):
    obj = _read_torch_zip(path)
  elif path.endswith('.safetensors') or _looks_safetensors(magic):
    return _read_safetensors(path)
  else:
    raise CheckpointError(
      f'{path}: neither safetensors nor a PyTorch zip checkpoint (legacy '
      'pre-1.6 torch files are not read; re-save with torch.save)')
  return _find_state_dict(obj, path)


def _looks_safetensors(magic: bytes) -> bool:
  return len(magic) == 8 and 2 <= struct.unpack('<Q', magic)[0] < 1 << 30


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  size = os.path.getsize(path)
  with open(path, 'rb') as f:
    try:
      (n,) = struct.unpack('<Q', f.read(8))
      if n > size - 8:
        raise ValueError('header longer than the file')
      header = json.loads(f.read(n))
    except (struct.error, ValueError) as e:
      raise CheckpointError(f'{path}: bad safetensors header ({e})') from e
    data = f.read()
  out = {}
  for name, info in header.items():
    if name == '__metadata__':
      continue
    dt = _ST_DTYPES.get(info.get('dtype'))
    if dt is None:
      raise CheckpointError(f'{path}: {name}: dtype {info.get("dtype")}')
    a, b = info['data_offsets']
    shape = tuple(info['shape'])
    if b > len(data) or (b - a) != np.dtype(dt).itemsize * int(
        np.prod(shape, dtype=np.int64)):
      raise CheckpointError(f'{path}: {name}: truncated or inconsistent data')
    out[name] = np.frombuffer(data[a:b], dt).reshape(shape).copy()
  return out


def _find_state_dict(obj, path: str) -> dict[str, np.ndarray]:
  """The tensor dict: `obj['state_dict']` (Lightning) or `obj` itself."""
  if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
    obj = obj['state_dict']
  if not isinstance(obj, dict):
    raise CheckpointError(f'{path}: holds a {type(obj).__name__}, not a dict')
  out = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
  odd = sorted(k for k, v in obj.items() if isinstance(v, _Opaque))
  if odd:
    raise CheckpointError(
      f'{path}: entries of unsupported types (not plain tensors): {odd[:8]}')
  if not out:
    raise CheckpointError(f'{path}: no tensors found')
  return out


class _Opaque:
  """Stands in for any global the reader does not trust; never runs code."""

  name = '?'

  def __new__(cls, *args, **kwargs):
    del args, kwargs
    return object.__new__(cls)

  def __init__(self, *args, **kwargs):
    self.args = args

  def __setstate__(self, state):
    self.state = state

  def __repr__(self):
    return f'<untrusted {self.name}>'


class _StorageType:
  def __init__(self, dtype):
    self.dtype = np.dtype(dtype)


def _rebuild_tensor(storage, offset, size, stride, *unused):
  """torch._utils._rebuild_tensor_v2: a strided view of a storage."""
  del unused
  if not isinstance(storage, np.ndarray):
    raise CheckpointError('tensor without a readable storage')
  item = storage.dtype.itemsize
  need = offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True)) + 1
  if any(s == 0 for s in size):
    return np.zeros(tuple(size), storage.dtype)
  if need > storage.size:
    raise CheckpointError('tensor view exceeds its storage')
  view = np.lib.stride_tricks.as_strided(
    storage[offset:], shape=tuple(size), strides=[s * item for s in stride])
  return np.array(view)


def _rebuild_v3(storage, offset, size, stride, requires_grad, hooks, dtype,
                *unused):
  del requires_grad, hooks, dtype, unused
  return _rebuild_tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *unused):
  del unused
  return data


def _rebuild_from_type(func, new_type, args, state):
  del new_type, state
  return func(*args)


_SAFE = {
  ('collections', 'OrderedDict'): collections.OrderedDict,
  ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
  ('torch._utils', '_rebuild_tensor_v3'): _rebuild_v3,
  ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
  ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
  ('torch._tensor', '_rebuild_from_type_v2'): _rebuild_from_type,
  ('torch', 'Size'): tuple,
  ('builtins', 'set'): set,
  ('builtins', 'frozenset'): frozenset,
  ('builtins', 'slice'): slice,
}


class _SafeUnpickler(pickle.Unpickler):
  """Resolves only `_SAFE` names and storage types; the rest is inert."""

  def __init__(self, file, archive: zipfile.ZipFile, root: str):
    super().__init__(file)
    self._zip, self._root = archive, root

  def find_class(self, module, name):
    if (module, name) in _SAFE:
      return _SAFE[(module, name)]
    if module == 'torch' and name in _TORCH_DTYPES:
      return _StorageType(_TORCH_DTYPES[name])
    return type(name, (_Opaque,), {'name': f'{module}.{name}'})

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
      raise CheckpointError(f'unsupported persistent id {pid!r}')
    _, stype, key, _, numel = pid
    if not isinstance(stype, _StorageType):
      raise CheckpointError(f'unsupported storage type {stype!r}')
    raw = self._zip.read(f'{self._root}/data/{key}')
    arr = np.frombuffer(raw, stype.dtype)
    if arr.size < numel:
      raise CheckpointError(f'storage {key} truncated')
    return arr[:numel]


def _read_torch_zip(path: str):
  try:
    with zipfile.ZipFile(path) as z:
      pkls = [n for n in z.namelist() if n.endswith('/data.pkl')]
      if len(pkls) != 1:
        raise CheckpointError(f'{path}: zip file is not a torch checkpoint')
      root = pkls[0][:-len('/data.pkl')]
      order = f'{root}/byteorder'
      if order in z.namelist() and z.read(order).strip() != b'little':
        raise CheckpointError(f'{path}: big-endian checkpoints unsupported')
      with z.open(pkls[0]) as f:
        return _SafeUnpickler(f, z, root).load()
  except (pickle.UnpicklingError, EOFError, KeyError, zipfile.BadZipFile,
          TypeError, AttributeError) as e:
    raise CheckpointError(f'{path}: corrupt torch checkpoint ({e})') from e


def write_state_dict(
  state: dict[str, np.ndarray], path: str | os.PathLike,
  *, lightning: bool | None = None,
) -> None:
  """Writes a state dict atomically (temp file, then rename).

  Args:
    state: name -> array.
    path: `.safetensors` (no torch needed) or a torch file (`.pt`, `.pth`,
      `.bin`, `.ckpt`; needs torch).
    lightning: wrap as {'state_dict': ...} (default: for `.ckpt`).
  """
  path = os.fspath(path)
  d = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=d, prefix='.tmp-', suffix='.part')
  os.close(fd)
  try:
    if path.endswith('.safetensors'):
      _write_safetensors(state, tmp)
    else:
      import torch  # lazily: optional dependency

      sd = collections.OrderedDict(
        (k, torch.from_numpy(np.array(v, order='C'))) for k, v in
        state.items())
      wrap = path.endswith('.ckpt') if lightning is None else lightning
      torch.save({'state_dict': sd} if wrap else sd, tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _write_safetensors(state, path):
  inv = {np.dtype(v): k for k, v in _ST_DTYPES.items()}
  header, blobs, off = {}, [], 0
  for name in sorted(state):
    a = np.ascontiguousarray(state[name])
    if a.dtype not in inv:
      raise CheckpointError(f'{name}: dtype {a.dtype} not storable')
    b = a.astype(a.dtype.newbyteorder('<'), copy=False).tobytes()
    header[name] = {'dtype': inv[a.dtype], 'shape': list(a.shape),
                    'data_offsets': [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
  h = json.dumps(header, separators=(',', ':')).encode()
  h += b' ' * (-len(h) % 8)
  with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(h)))
    f.write(h)
    for b in blobs:
      f.write(b)
