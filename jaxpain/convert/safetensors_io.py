"""The safetensors format, read and written with numpy alone.

Why: safetensors is the one weight format that holds no code, so it needs
no unpickler, only care: the JSON header is untrusted, so every tensor's
dtype, shape and byte range is checked, the byte ranges must tile the data
without overlap (the format's rule; it also bounds the memory a read takes
by the file size), and a short file is reported as truncated. BF16 and
float8 come back as ml_dtypes types, which numpy lacks.

`jaxpain.convert.torch_files` sniffs the format by content and wraps the
`FormatError`s raised here into one-line `CheckpointError`s naming the file.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys

import ml_dtypes
import numpy as np

DTYPES = {  # safetensors dtype name -> numpy dtype
  'F64': np.float64, 'F32': np.float32, 'F16': np.float16,
  'BF16': ml_dtypes.bfloat16, 'F8_E4M3': ml_dtypes.float8_e4m3fn,
  'F8_E5M2': ml_dtypes.float8_e5m2, 'I64': np.int64, 'I32': np.int32,
  'I16': np.int16, 'I8': np.int8, 'U64': np.uint64, 'U32': np.uint32,
  'U16': np.uint16, 'U8': np.uint8, 'BOOL': np.bool_, 'C64': np.complex64,
}
_NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
_MAX_HEADER = 100 << 20


class FormatError(ValueError):
  """A problem found inside a file; the caller adds the file name."""


def nonnegative_ints(value, what: str) -> tuple[int, ...]:
  """`value` as a tuple of non-negative ints, else FormatError naming it."""
  if not isinstance(value, (tuple, list)) or not all(
      type(v) is int and v >= 0 for v in value):
    raise FormatError(f'a tensor {what} that is not made of non-negative ints')
  return tuple(value)


def looks_like_safetensors(head: bytes) -> bool:
  """Whether a file's first 9 bytes open a safetensors file."""
  return len(head) >= 9 and head[8:9] == b'{'


def read_safetensors(path: str, max_bytes: int | None = None
                     ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Reads a safetensors file.

  Args:
    path: the file.
    max_bytes: memory the tensors may take (default: no limit beyond the
      file size, which the tiling rule already enforces).

  Returns:
    (tensors, metadata): name -> array in header order (native byte order,
    owning its memory), and the `__metadata__` str -> str map.

  Raises:
    FormatError: a bad header, a bad tensor entry, or truncated data.
  """
  size = os.path.getsize(path)
  with open(path, 'rb') as f:
    (n,) = struct.unpack('<Q', f.read(8).ljust(8, b'\0'))
    if n > min(size - 8, _MAX_HEADER):
      raise FormatError(f'header length {n} exceeds the file')
    try:
      header = json.loads(f.read(n))
    except ValueError as e:
      raise FormatError(f'header is not JSON ({e})') from None
    if not isinstance(header, dict):
      raise FormatError('header is not a JSON object')
    meta = header.pop('__metadata__', None) or {}
    if not (isinstance(meta, dict) and all(
        isinstance(v, str) for v in meta.values())):
      raise FormatError('__metadata__ is not a str -> str object')
    entries = {name: _entry(name, info) for name, info in header.items()}
    _check_tiling(entries, size - 8 - n, max_bytes)
    tensors = {name: _read(f, 8 + n, e) for name, e in entries.items()}
  return tensors, meta


def _entry(name: str, info) -> tuple[np.dtype, tuple[int, ...], int, int]:
  if not isinstance(info, dict) or info.get('dtype') not in DTYPES:
    raise FormatError(f'{name}: unknown dtype {str(info)[:60]}')
  dt = np.dtype(DTYPES[info['dtype']])
  shape = nonnegative_ints(info.get('shape'), f'{name} shape')
  offsets = nonnegative_ints(info.get('data_offsets'), f'{name} data_offsets')
  if len(offsets) != 2 or offsets[1] - offsets[0] != math.prod(
      shape) * dt.itemsize:
    raise FormatError(f'{name}: data_offsets do not match its shape and dtype')
  return dt, shape, *offsets


def _check_tiling(entries: dict, available: int, max_bytes: int | None):
  """The byte ranges follow each other from 0 (no overlap, no gap)."""
  end = 0
  for name, (_, _, begin, stop) in sorted(
      entries.items(), key=lambda item: item[1][2:]):
    if begin != end:
      raise FormatError(f'{name}: data_offsets overlap or leave a gap')
    end = stop
  if end > available:
    raise FormatError(f'data past the end of the file (truncated: {end} '
                      f'bytes declared, {available} present)')
  if max_bytes is not None and end > max_bytes:
    raise FormatError('the tensors would take more memory than the limit '
                      '(max_bytes); raise it if the file is trusted')


def _read(f, data_start: int, entry) -> np.ndarray:
  dt, shape, begin, end = entry
  f.seek(data_start + begin)
  out = np.frombuffer(f.read(end - begin), dt).reshape(shape).copy()
  if sys.byteorder == 'big' and dt.itemsize > 1:  # the format is little
    out.byteswap(inplace=True)
  return out.view(np.uint8) != 0 if dt == np.bool_ else out


def write_safetensors(state: dict[str, np.ndarray], path: str) -> None:
  """Writes `state` to `path` (sorted names; no metadata).

  Raises:
    FormatError: an array of a dtype safetensors cannot store.
  """
  header, blobs, offset = {}, [], 0
  for name in sorted(state):
    a = np.ascontiguousarray(state[name])
    kind = _NAMES.get(a.dtype.newbyteorder('='))
    if kind is None:
      raise FormatError(f'{name}: dtype {a.dtype} not storable')
    data = a.astype(a.dtype.newbyteorder('<'), copy=False).tobytes()
    header[name] = {'dtype': kind, 'shape': list(a.shape),
                    'data_offsets': [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
  text = json.dumps(header, separators=(',', ':')).encode()
  text += b' ' * (-len(text) % 8)
  with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(text)))
    f.write(text)
    for data in blobs:
      f.write(data)
