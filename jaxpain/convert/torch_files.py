"""Reads `torch.save` zip files and safetensors files without torch, safely.

Why: weights come from elsewhere (the ViTPain and timm releases, the
PainDiffusion release, reference §B.2, §G.5), and a torch file is a pickle,
which is a program: `torch.load` without `weights_only` imports and calls
whatever the file names. This reader needs no torch (nor jax) and runs no
code from the file. Its unpickler resolves a short whitelist (tensor
rebuilds, OrderedDict, torch.Size, storage classes, dtypes), each mapped to
our own function or immutable marker; any other global is, by the caller's
choice (`unknown=`),
- 'refuse' (the default): refused before anything is called, or
- 'opaque': an inert `Opaque` placeholder (for Lightning `.ckpt` files,
  whose hyper-parameters, callbacks and loop states name classes of their
  own). Calling, building or filling a placeholder gives a placeholder or
  nothing; no function of the file's choosing is ever called, tensor
  subclasses included (`torch._tensor._rebuild_from_type_v2` is such a
  global), while the plain tensors around them are still read.
In both modes tensor views are checked against their storage, each storage
against the size the pickle declares, and the memory the tensors take is
capped (`max_bytes`); big-endian files are converted.

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
import math
import os
import pickle
import sys
import zipfile
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import ml_dtypes
import numpy as np

from jaxpain.convert.safetensors_io import (
  FormatError,
  looks_like_safetensors,
  nonnegative_ints,
  read_safetensors,
)
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
_REMEDY = 'download or save the file again'
_OPAQUE_CLASS_BYTES = 1024  # charged per placeholder class (memory bound)
Unknown = Literal['refuse', 'opaque']


class CheckpointError(UserError):
  """A checkpoint file that cannot be read safely, or does not fit the model.

  A ValueError (through UserError): one line naming the file and the remedy.
  """


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
      raise FormatError('an OrderedDict with unexpected object state')


class _FrozenClass(type):
  """The metaclass of placeholder classes: a pickle cannot alter them."""

  def __setattr__(cls, name, value):
    raise FormatError(f'a pickle that alters the placeholder of {cls.name}')

  __delattr__ = __setattr__


class Opaque(metaclass=_FrozenClass):
  """An object of a class the reader does not trust (`unknown='opaque'`).

  Inert and immutable: creating, calling or building one, or filling it as
  a dict/list/set, runs no code and keeps nothing; `name` is the global the
  file named (e.g. 'argparse.Namespace').
  """
  __slots__ = ()
  name = '?'

  def __new__(cls, *args, **kwargs):
    del args, kwargs
    return object.__new__(cls)

  def __init__(self, *args, **kwargs):
    del args, kwargs

  def __call__(self, *args, **kwargs):
    return type(self)()

  def __setattr__(self, name, value):
    raise FormatError(f'a pickle that alters the placeholder of {self.name}')

  def __setstate__(self, state):  # BUILD: the state is dropped
    del state

  def __setitem__(self, key, value):  # SETITEMS on a dict subclass
    del key, value

  def append(self, item):  # APPEND(S), ADDITEMS on a list/set subclass
    del item

  add = extend = append

  def __repr__(self):
    return f'<opaque {self.name}>'


def _np_dtype(name: str) -> np.dtype:
  return np.dtype(_NUMPY_DTYPES[name])


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
  del requires_grad, state  # a Parameter is its tensor; attributes dropped
  if not isinstance(data, _Tensor) or hooks:
    raise FormatError('a Parameter without a tensor or with backward hooks')
  return data


class _Unpickler(pickle.Unpickler):
  """Resolves only the whitelist; storages come from the zip archive."""

  def __init__(self, archive: zipfile.ZipFile, root: str, swap: bool,
               budget: int, unknown: Unknown):
    self._zip, self._root, self._swap = archive, root, swap
    self._budget, self._storages, self._unknown = budget, {}, unknown
    self._opaque: dict[str, type] = {}
    super().__init__(io.BytesIO(self._member('data.pkl', None)))
    self._globals = {
      ('torch._utils', '_rebuild_tensor_v2'): _Callable(self._rebuild_v2),
      ('torch._utils', '_rebuild_tensor_v3'): _Callable(self._rebuild_v3),
      ('torch._utils', '_rebuild_parameter'): _Callable(_rebuild_parameter),
      ('torch._utils', '_rebuild_parameter_with_state'):
        _Callable(_rebuild_parameter),
      ('collections', 'OrderedDict'): _Callable(_Dict),
      ('torch', 'Size'): _Callable(
        lambda dims=(): nonnegative_ints(dims, 'Size')),
      ('torch', 'UntypedStorage'): _Dtype('uint8', untyped=True),
      ('torch.storage', 'UntypedStorage'): _Dtype('uint8', untyped=True),
    }

  def _member(self, name: str, size: int | None) -> bytes:
    """An archive member, its declared size checked before reading."""
    name = f'{self._root}/{name}'
    if name not in self._zip.NameToInfo:
      raise FormatError(f'{name} is missing from the archive; {_REMEDY}')
    info = self._zip.getinfo(name)
    if size is not None and info.file_size != size:
      raise FormatError(f'{name} holds {info.file_size} bytes where the '
                        f'pickle declares {size}; {_REMEDY}')
    self._charge(info.file_size)  # a deflate bomb is refused unread
    return self._zip.read(info)

  def find_class(self, module, name):
    found = self._globals.get((module, name))
    if module == 'torch' and name in {**_STORAGES, **_NUMPY_DTYPES}:
      found = _Dtype(_STORAGES.get(name, name))
    if found is None and self._unknown == 'opaque':
      found = self._opaque_class(f'{module}.{name}')
    if found is None:
      raise FormatError(
        f'refusing to load {module}.{name}: the file may contain code; only '
        'tensors and plain containers are read (if you trust it, re-save '
        'just those with torch.save)')
    return found

  def _opaque_class(self, name: str) -> type:
    """One frozen `Opaque` subclass per global name (no file code)."""
    if name not in self._opaque:
      self._charge(_OPAQUE_CLASS_BYTES)
      self._opaque[name] = _FrozenClass(
        'Opaque', (Opaque,), {'__slots__': (), 'name': name})
    return self._opaque[name]

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == 5
            and pid[0] in ('storage', b'storage')
            and isinstance(pid[1], _Dtype) and type(pid[4]) is int
            and pid[4] >= 0 and isinstance(pid[2], (str, bytes))):
      raise FormatError(f'unsupported persistent id {str(pid)[:80]!r}')
    _, kind, key, _, numel = pid
    key = key.decode('ascii') if isinstance(key, bytes) else key
    nbytes = numel * _np_dtype(kind.name).itemsize
    if key not in self._storages:
      self._storages[key] = self._member(f'data/{key}', nbytes)
    data = self._storages[key]
    if len(data) != nbytes:
      raise FormatError(f'storage {key} is used with two different sizes')
    return _Storage(key, kind.name, kind.untyped, data)

  def _charge(self, nbytes: int):
    self._budget -= nbytes
    if self._budget < 0:
      raise FormatError('the tensors would take more memory than the limit '
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
      raise FormatError('a tensor without a storage or a known dtype')
    if hooks or metadata or not isinstance(hooks, dict):
      raise FormatError('a tensor with backward hooks or extra metadata')
    (offset,) = nonnegative_ints((offset,), 'offset')
    shape = nonnegative_ints(size, 'size')
    strides = nonnegative_ints(stride, 'stride')
    if len(shape) != len(strides):
      raise FormatError('a tensor whose size and stride differ in length')
    dt = _np_dtype(dtype.name)
    available, count = len(storage.data) // dt.itemsize, math.prod(shape)
    if count == 0:
      return _Tensor(np.zeros(shape, dt))
    last = offset + sum(
      (n - 1) * s for n, s in zip(shape, strides, strict=True))
    if last >= available:
      raise FormatError(
        f'a tensor (size {shape}, stride {strides}, offset {offset}) reads '
        f'past its storage {storage.key} of {available} elements; {_REMEDY}')
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
  """Our markers -> the documented result types (after unpickling)."""
  if isinstance(obj, _Tensor):
    return obj.array
  if isinstance(obj, _Dtype) and not obj.untyped:
    return _np_dtype(obj.name)  # a torch dtype (or a storage class)
  if isinstance(obj, (_Dtype, _Storage, _Callable)):
    raise FormatError('a bare storage or function object outside a tensor')
  if isinstance(obj, _FrozenClass):  # a class named but not called
    return memo.setdefault(id(obj), obj())
  if obj is None or isinstance(obj, (str, bytes, bytearray, int, float,
                                     complex, Opaque)) or id(obj) in memo:
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
    raise FormatError(f'an object of type {type(obj).__name__}')
  return out


def file_format(path: str | os.PathLike) -> str:
  """'zip' or 'safetensors', from the first bytes; else CheckpointError."""
  path = os.fspath(path)
  if os.path.isdir(path):
    raise CheckpointError(f'{path}: is a directory, not a checkpoint file; '
                          'give the file inside it')
  if not os.path.lexists(path):
    raise CheckpointError(f'{path}: cannot be read (no such file); check '
                          'the path')
  try:
    with open(path, 'rb') as f:
      head = f.read(9)
  except OSError as e:
    raise CheckpointError(f'{path}: cannot be read ({e.strerror}); check '
                          'the path') from None
  if head.startswith(b'PK'):
    return 'zip'
  if looks_like_safetensors(head):
    return 'safetensors'
  if head.startswith(b'\x80'):
    raise CheckpointError(
      f'{path}: a legacy (pre-1.6) torch file or a bare pickle, which is not '
      'read; re-save it with a recent torch in a trusted environment '
      '(torch.save(torch.load(f, weights_only=True), new_file))')
  raise CheckpointError(f'{path}: neither a torch zip checkpoint nor a '
                        f'safetensors file{" (empty)" if not head else ""}; '
                        'check the path, or download the file again')


def read_torch_file(path: str | os.PathLike, *, unknown: Unknown = 'refuse',
                    max_bytes: int | None = None) -> Any:
  """Reads a `torch.save` zip file (or a safetensors file) without torch.

  Args:
    path: the file; its format is found from its content.
    unknown: what a global outside the whitelist becomes: 'refuse' (a
      CheckpointError naming it) or 'opaque' (an inert `Opaque`, for files
      such as Lightning checkpoints that hold objects besides tensors).
    max_bytes: memory the tensors may take (default: 4x the file size plus
      1 GiB), so that a crafted file (stride-0 views) cannot exhaust memory.

  Returns:
    The saved object with tensors as numpy arrays; for a safetensors file
    `{'state_dict': ..., 'metadata': ...}` (see the module docstring).

  Raises:
    CheckpointError: missing, unreadable, corrupt, of another format, or
      (with unknown='refuse') holding anything but tensors and containers.
  """
  if unknown not in ('refuse', 'opaque'):
    raise ValueError(f"unknown={unknown!r}: use 'refuse' or 'opaque'")
  path = os.fspath(path)
  kind = file_format(path)
  if max_bytes is None:
    max_bytes = 4 * os.path.getsize(path) + (1 << 30)
  try:
    if kind == 'safetensors':
      tensors, meta = read_safetensors(path, max_bytes)
      return {'state_dict': tensors, 'metadata': meta}
    with zipfile.ZipFile(path) as archive:
      return _read_archive(archive, max_bytes, unknown)
  except FormatError as e:  # every message names what to do
    what = 'bad safetensors file: ' if kind == 'safetensors' else ''
    remedy = '' if ';' in str(e) else f'; {_REMEDY}'
    raise CheckpointError(f'{path}: {what}{e}{remedy}') from None
  except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError,
          NotImplementedError, ValueError) as e:
    what = 'zip archive' if kind == 'zip' else 'safetensors file'
    raise CheckpointError(f'{path}: a damaged {what} ({one_line(e)}); '
                          f'{_REMEDY}') from None


def _read_archive(archive: zipfile.ZipFile, max_bytes: int,
                  unknown: Unknown) -> Any:
  pkls = [n for n in archive.namelist()
          if n.endswith('/data.pkl') and n.count('/') == 1]
  if len(pkls) != 1:
    raise FormatError(f'a zip with {len(pkls)} <archive>/data.pkl members, '
                      'not a torch.save file; check the path')
  root = pkls[0][:-len('/data.pkl')]
  order = b'little'  # torch's default when the record is absent
  if f'{root}/byteorder' in archive.NameToInfo:
    order = archive.read(f'{root}/byteorder')
  if order not in (b'little', b'big'):
    raise FormatError(f'unknown byte order {order[:16]!r}; {_REMEDY}')
  swap = order.decode() != sys.byteorder
  unpickler = _Unpickler(archive, root, swap, max_bytes, unknown)
  try:
    return _plain(unpickler.load(), {})
  except FormatError:
    raise
  except Exception as e:  # any failure on untrusted data is bad input
    raise FormatError(f'{root}/data.pkl is corrupt ({type(e).__name__}: '
                      f'{one_line(e)}); {_REMEDY}') from None
