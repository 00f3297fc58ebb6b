"""Reads `torch.save` checkpoints and safetensors files without torch, safely.

Why: the released PainDiffusion weights (reference §G.5) are a torch pickle
named `model.safetensors`, and a pickle is a program: `torch.load` without
`weights_only` imports and calls whatever the file names. This reader needs
no torch and runs no code from the file: its unpickler resolves only a short
whitelist (tensor rebuilds, OrderedDict, torch.Size, storage classes,
dtypes), each mapped to our own inert function or immutable marker, and
refuses every other global before anything is called.

Formats are told apart by content, never by file name. A torch zip (torch
>= 1.6) gives the saved object: tensors as C-contiguous numpy arrays that
own their memory (native byte order; bfloat16/float8 as ml_dtypes types),
OrderedDict as dict (order kept), torch.Size as tuple, a torch dtype as a
numpy dtype. A safetensors file gives `{'state_dict': {name: array},
'metadata': {str: str}}`. Legacy (pre-1.6) torch files and bare pickles are
refused. Every failure is one `CheckpointError` line: file, problem, remedy.
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import pickle
import struct
import sys
import zipfile
from collections.abc import Callable
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np

from synth.cli_errors import UserError, one_line

_NUMPY_DTYPES = {  # torch dtype name -> numpy dtype
  **{n: getattr(np, n) for n in (
    'float64 float32 float16 int64 int32 int16 int8 uint64 uint32 uint16 '
    'uint8 complex64 complex128').split()},
  **{n: getattr(ml_dtypes, n) for n in (
    'bfloat16 float8_e4m3fn float8_e5m2 float8_e4m3fnuz float8_e5m2fnuz'
  ).split()}, 'bool': np.bool_}
_STORAGES = {  # legacy typed storage class -> torch dtype name
  'DoubleStorage': 'float64', 'FloatStorage': 'float32',
  'HalfStorage': 'float16', 'BFloat16Storage': 'bfloat16',
  'LongStorage': 'int64', 'IntStorage': 'int32', 'ShortStorage': 'int16',
  'CharStorage': 'int8', 'ByteStorage': 'uint8', 'BoolStorage': 'bool',
  'ComplexFloatStorage': 'complex64', 'ComplexDoubleStorage': 'complex128',
}
_SAFETENSORS_DTYPES = dict(  # safetensors name -> torch dtype name
  F64='float64', F32='float32', F16='float16', BF16='bfloat16',
  F8_E4M3='float8_e4m3fn', F8_E5M2='float8_e5m2', I64='int64', I32='int32',
  I16='int16', I8='int8', U64='uint64', U32='uint32', U16='uint16',
  U8='uint8', BOOL='bool', C64='complex64')
_MAX_SAFETENSORS_HEADER = 100 << 20
_REMEDY = 'download or save the file again'


class CheckpointError(UserError):
  """A checkpoint file that cannot be read safely (a ValueError)."""


class _Bad(Exception):
  """A problem found inside the file; the caller adds the file name."""


# Immutable (tuples without __dict__): BUILD in a pickle cannot alter them.
# A torch dtype or storage class named by the pickle, by torch dtype name:
_Dtype = collections.namedtuple('_Dtype', 'name untyped', defaults=(False,))
_Storage = collections.namedtuple('_Storage', 'key dtype untyped data')
_Tensor = collections.namedtuple('_Tensor', 'array')


class _Callable(NamedTuple):
  """A whitelisted callable, immutable so that BUILD cannot rewire it."""
  fn: Callable[..., Any]

  def __call__(self, *args):
    return self.fn(*args)


class _Dict(dict):
  """collections.OrderedDict while unpickling; becomes a plain dict."""
  __slots__ = ()

  def __setstate__(self, state):
    # torch's state_dict() carries `_metadata` (module versions): dropped.
    if not (isinstance(state, dict) and set(state) <= {'_metadata'}):
      raise _Bad('an OrderedDict with unexpected object state')


def _np_dtype(name: str) -> np.dtype:
  return np.dtype(_NUMPY_DTYPES[name])


def _ints(value, what: str) -> tuple[int, ...]:
  if not isinstance(value, (tuple, list)) or not all(
      type(v) is int and v >= 0 for v in value):
    raise _Bad(f'a tensor {what} that is not made of non-negative ints')
  return tuple(value)


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
  del requires_grad, state  # a Parameter is its tensor; attributes dropped
  if not isinstance(data, _Tensor) or hooks:
    raise _Bad('a Parameter without a tensor or with backward hooks')
  return data


class _Unpickler(pickle.Unpickler):
  """Resolves only the whitelist; storages come from the zip archive."""

  def __init__(self, archive: zipfile.ZipFile, root: str, swap: bool,
               budget: int):
    self._zip, self._root, self._swap = archive, root, swap
    self._budget, self._storages = budget, {}
    super().__init__(io.BytesIO(self._member('data.pkl', None)))
    self._globals = {
      ('torch._utils', '_rebuild_tensor_v2'): _Callable(self._rebuild_v2),
      ('torch._utils', '_rebuild_tensor_v3'): _Callable(self._rebuild_v3),
      ('torch._utils', '_rebuild_parameter'): _Callable(_rebuild_parameter),
      ('torch._utils', '_rebuild_parameter_with_state'):
        _Callable(_rebuild_parameter),
      ('collections', 'OrderedDict'): _Callable(_Dict),
      ('torch', 'Size'): _Callable(lambda dims=(): _ints(dims, 'Size')),
      ('torch', 'UntypedStorage'): _Dtype('uint8', untyped=True),
      ('torch.storage', 'UntypedStorage'): _Dtype('uint8', untyped=True),
    }

  def _member(self, name: str, size: int | None) -> bytes:
    """An archive member, its declared size checked before reading."""
    name = f'{self._root}/{name}'
    if name not in self._zip.NameToInfo:
      raise _Bad(f'{name} is missing from the archive; {_REMEDY}')
    info = self._zip.getinfo(name)
    if size is not None and info.file_size != size:
      raise _Bad(f'{name} holds {info.file_size} bytes where the pickle '
                 f'declares {size}; {_REMEDY}')
    self._charge(info.file_size)  # a deflate bomb is refused unread
    return self._zip.read(info)

  def find_class(self, module, name):
    found = self._globals.get((module, name))
    if module == 'torch' and name in {**_STORAGES, **_NUMPY_DTYPES}:
      found = _Dtype(_STORAGES.get(name, name))
    if found is None:
      raise _Bad(f'refusing to load {module}.{name}: the file may contain '
                 'code; only tensors and plain containers are read (if you '
                 'trust it, re-save just those with torch.save)')
    return found

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == 5
            and pid[0] in ('storage', b'storage')
            and isinstance(pid[1], _Dtype) and type(pid[4]) is int
            and pid[4] >= 0 and isinstance(pid[2], (str, bytes))):
      raise _Bad(f'unsupported persistent id {str(pid)[:80]!r}')
    _, kind, key, _, numel = pid
    key = key.decode('ascii') if isinstance(key, bytes) else key
    nbytes = numel * _np_dtype(kind.name).itemsize
    if key not in self._storages:
      self._storages[key] = self._member(f'data/{key}', nbytes)
    data = self._storages[key]
    if len(data) != nbytes:
      raise _Bad(f'storage {key} is used with two different sizes')
    return _Storage(key, kind.name, kind.untyped, data)

  def _charge(self, nbytes: int):
    self._budget -= nbytes
    if self._budget < 0:
      raise _Bad('the tensors would take more memory than the limit '
                 '(max_bytes); raise it if the file is trusted')

  def _rebuild_v2(self, storage, *args):
    """(storage, offset, size, stride, requires_grad, hooks[, metadata])."""
    typed = isinstance(storage, _Storage) and not storage.untyped
    dtype = _Dtype(storage.dtype if typed else None)  # v3 names the dtype
    return self._rebuild_v3(storage, *args[:5], dtype, *args[5:])

  def _rebuild_v3(self, storage, offset, size, stride, requires_grad, hooks,
                  dtype, metadata=None):
    """A contiguous copy of the strided view (torch's set_ semantics)."""
    del requires_grad
    if not (isinstance(storage, _Storage) and isinstance(dtype, _Dtype)
            and dtype.name in _NUMPY_DTYPES and not dtype.untyped):
      raise _Bad('a tensor without a storage or a known dtype')
    if hooks or metadata or not isinstance(hooks, dict):
      raise _Bad('a tensor with backward hooks or extra metadata')
    (offset,), shape = _ints((offset,), 'offset'), _ints(size, 'size')
    strides = _ints(stride, 'stride')
    if len(shape) != len(strides):
      raise _Bad('a tensor whose size and stride differ in length')
    dt = _np_dtype(dtype.name)
    available, count = len(storage.data) // dt.itemsize, math.prod(shape)
    if count == 0:
      return _Tensor(np.zeros(shape, dt))
    last = offset + sum(
      (n - 1) * s for n, s in zip(shape, strides, strict=True))
    if last >= available:
      raise _Bad(f'a tensor (size {shape}, stride {strides}, offset {offset})'
                 f' reads past its storage {storage.key} of {available} '
                 f'elements; {_REMEDY}')
    self._charge(count * dt.itemsize)
    base = np.frombuffer(storage.data, dt, count=last + 1)
    out = np.lib.stride_tricks.as_strided(
      base[offset:], shape, [s * dt.itemsize for s in strides],
      writeable=False).copy()
    if self._swap and dt.itemsize > 1:
      out.byteswap(inplace=True)
    if dt == np.bool_:  # any nonzero byte is True, as in torch
      out = out.view(np.uint8) != 0
    return _Tensor(out)


def _plain(obj, memo: dict[int, Any]):
  """Our placeholders -> the documented result types (after unpickling)."""
  if isinstance(obj, _Tensor):
    return obj.array
  if isinstance(obj, _Dtype) and not obj.untyped:
    return _np_dtype(obj.name)  # a torch dtype (or a storage class)
  if isinstance(obj, (_Dtype, _Storage, _Callable)):
    raise _Bad('a bare storage or function object outside a tensor')
  if obj is None or isinstance(obj, (str, bytes, bytearray, int, float,
                                     complex)) or id(obj) in memo:
    return memo.get(id(obj), obj)
  if isinstance(obj, dict):
    out = memo[id(obj)] = {}
    out.update((_plain(k, memo), _plain(v, memo)) for k, v in obj.items())
  elif isinstance(obj, list):
    out = memo[id(obj)] = []
    out.extend(_plain(v, memo) for v in obj)
  elif type(obj) in (tuple, set, frozenset):
    out = memo[id(obj)] = type(obj)(_plain(v, memo) for v in obj)
  else:
    raise _Bad(f'an object of type {type(obj).__name__}')
  return out


def _sniff(path: str) -> str:
  """'zip' or 'safetensors', from the first bytes; else CheckpointError."""
  if os.path.isdir(path):
    raise CheckpointError(f'{path}: is a directory, not a checkpoint file; '
                          'give the file inside it')
  try:
    with open(path, 'rb') as f:
      head = f.read(9)
  except OSError as e:
    raise CheckpointError(f'{path}: cannot be read ({e.strerror}); check '
                          'the path') from None
  if head.startswith(b'PK'):
    return 'zip'
  if len(head) == 9 and head[8:9] == b'{':
    return 'safetensors'
  if head.startswith(b'\x80'):
    raise CheckpointError(
      f'{path}: a legacy (pre-1.6) torch file or a bare pickle, which is not '
      'read; re-save it with a recent torch in a trusted environment '
      '(torch.save(torch.load(f, weights_only=True), new_file))')
  raise CheckpointError(f'{path}: neither a torch zip checkpoint nor a '
                        f'safetensors file{" (empty)" if not head else ""}; '
                        'check the path, or download the file again')


def read_torch_file(path: str | os.PathLike, *,
                    max_bytes: int | None = None) -> Any:
  """Reads a `torch.save` zip file (or a safetensors file) without torch.

  Args:
    path: the file; its format is found from its content.
    max_bytes: memory the tensors may take (default: 4x the file size plus
      1 GiB), so that a crafted file (stride-0 views) cannot exhaust memory.

  Returns:
    The saved object with tensors as numpy arrays; for a safetensors file
    `{'state_dict': ..., 'metadata': ...}` (see the module docstring).

  Raises:
    CheckpointError: missing, unreadable, corrupt, of another format, or
      holding anything but tensors and plain containers.
  """
  path = os.fspath(path)
  if _sniff(path) == 'safetensors':
    return _read_safetensors(path)
  if max_bytes is None:
    max_bytes = 4 * os.path.getsize(path) + (1 << 30)
  try:
    with zipfile.ZipFile(path) as archive:
      return _read_archive(archive, max_bytes)
  except _Bad as e:  # every message names what to do
    remedy = '' if ';' in str(e) else f'; {_REMEDY}'
    raise CheckpointError(f'{path}: {e}{remedy}') from None
  except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError,
          NotImplementedError, ValueError) as e:
    raise CheckpointError(f'{path}: a damaged zip archive ({one_line(e)}); '
                          f'{_REMEDY}') from None


def _read_archive(archive: zipfile.ZipFile, max_bytes: int) -> Any:
  pkls = [n for n in archive.namelist()
          if n.endswith('/data.pkl') and n.count('/') == 1]
  if len(pkls) != 1:
    raise _Bad(f'a zip with {len(pkls)} <archive>/data.pkl members, not a '
               'torch.save file; check the path')
  root = pkls[0][:-len('/data.pkl')]
  order = b'little'  # torch's default when the record is absent
  if f'{root}/byteorder' in archive.NameToInfo:
    order = archive.read(f'{root}/byteorder')
  if order not in (b'little', b'big'):
    raise _Bad(f'unknown byte order {order[:16]!r}; {_REMEDY}')
  swap = order.decode() != sys.byteorder
  unpickler = _Unpickler(archive, root, swap, max_bytes)
  try:
    return _plain(unpickler.load(), {})
  except _Bad:
    raise
  except Exception as e:  # any failure on untrusted data is bad input
    raise _Bad(f'{root}/data.pkl is corrupt ({type(e).__name__}: '
               f'{one_line(e)}); {_REMEDY}') from None


def _read_safetensors(path: str) -> dict[str, dict]:
  """{'state_dict': {name: array}, 'metadata': {str: str}}, header order."""
  size = os.path.getsize(path)
  try:
    with open(path, 'rb') as f:
      (n,) = struct.unpack('<Q', f.read(8))
      if n > min(size - 8, _MAX_SAFETENSORS_HEADER):
        raise _Bad(f'header length {n} exceeds the file')
      header = json.loads(f.read(n))
      if not isinstance(header, dict):
        raise _Bad('header is not a JSON object')
      meta = header.pop('__metadata__', None) or {}
      if not (isinstance(meta, dict) and all(
          isinstance(v, str) for v in meta.values())):
        raise _Bad('__metadata__ is not a str -> str object')
      tensors = {name: _safetensor(f, 8 + n, name, info)
                 for name, info in header.items()}
  except (_Bad, struct.error, ValueError) as e:
    raise CheckpointError(f'{path}: bad safetensors file ({one_line(e)}); '
                          f'{_REMEDY}') from None
  return {'state_dict': tensors, 'metadata': meta}


def _safetensor(f, data_start: int, name: str, info) -> np.ndarray:
  if not isinstance(info, dict) or info.get('dtype') not in (
      _SAFETENSORS_DTYPES):
    raise _Bad(f'{name}: unknown dtype {str(info)[:60]}')
  dt = _np_dtype(_SAFETENSORS_DTYPES[info['dtype']])
  shape = _ints(info.get('shape'), f'{name} shape')
  begin, end = _ints(info.get('data_offsets'), f'{name} data_offsets')
  if end - begin != math.prod(shape) * dt.itemsize:
    raise _Bad(f'{name}: data_offsets do not match its shape and dtype')
  f.seek(data_start + begin)
  raw = f.read(end - begin)
  if len(raw) != end - begin:
    raise _Bad(f'{name}: data past the end of the file (truncated)')
  out = np.frombuffer(raw, dt).reshape(shape).copy()  # owns its memory
  if sys.byteorder == 'big' and dt.itemsize > 1:  # the format is little
    out.byteswap(inplace=True)
  return out.view(np.uint8) != 0 if dt == np.bool_ else out


def load_paindiffusion_checkpoint(
    path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
  """Reads the PainDiffusion release: `{'state_dict': ..., 'config': ...}`.

  Args:
    path: the release's `model.safetensors` (a torch zip despite its name).

  Returns:
    (state_dict, config): parameter name -> numpy array, and the YAML
    config as plain dicts, lists and scalars.

  Raises:
    CheckpointError: unreadable file, or not the release's layout.
  """
  path = os.fspath(path)
  if _sniff(path) == 'safetensors':
    raise CheckpointError(
      f'{path}: a real safetensors file, which holds no YAML config; use '
      "the release's model.safetensors (a torch pickle despite its name)")
  obj = read_torch_file(path)
  if not (isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict)
          and isinstance(obj.get('config'), dict)):
    found = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj)
    raise CheckpointError(
      f"{path}: expected a dict with 'state_dict' and 'config' dicts (the "
      f'PainDiffusion release), found {str(found)[:80]}; check the file')
  odd = [str(k) for k, v in obj['state_dict'].items()
         if not (isinstance(k, str) and isinstance(v, np.ndarray))]
  if odd:
    raise CheckpointError(f"{path}: 'state_dict' entries that are not named "
                          f'tensors: {odd[:5]}; check the file')
  return obj['state_dict'], obj['config']
