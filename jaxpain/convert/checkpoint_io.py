"""Reading and writing flat state dicts (name -> numpy array) safely.

Why: the weight import (`weights.py`) wants one flat dict of tensors from
whatever file a user has: a safetensors file, a plain `torch.save` state
dict (`.pt`, `.pth`, `.bin`) or a Lightning `.ckpt`, whose weights sit under
'state_dict' beside hyper-parameters, callbacks and loop states that name
classes of their own. Reading goes through `torch_files.read_torch_file`
(format told by content; no torch, no code from the file run) with
`unknown='opaque'`, so those other objects become inert placeholders and the
state dict is still found; a placeholder inside the state dict itself is
refused. Writing is atomic.
"""

from __future__ import annotations

import collections
import os
import tempfile

import numpy as np

from jaxpain.convert.safetensors_io import FormatError, write_safetensors
from jaxpain.convert.torch_files import CheckpointError, Opaque, read_torch_file

__all__ = ['CheckpointError', 'read_state_dict', 'write_state_dict']


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a flat name -> array dict from a checkpoint file.

  Args:
    path: a safetensors file, or a PyTorch zip checkpoint (a plain state
      dict, or a dict holding one under 'state_dict', as Lightning writes);
      the format is found from the content, not the name.

  Returns:
    The tensors as numpy arrays (non-tensor entries such as numbers and
    strings dropped).

  Raises:
    CheckpointError: missing file, unknown format, corrupt data, objects of
      unknown classes inside the state dict, or no tensors found.
  """
  path = os.fspath(path)
  return _find_state_dict(read_torch_file(path, unknown='opaque'), path)


def _find_state_dict(obj, path: str) -> dict[str, np.ndarray]:
  """The tensor dict: `obj['state_dict']` (Lightning) or `obj` itself."""
  if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
    obj = obj['state_dict']
  if not isinstance(obj, dict):
    raise CheckpointError(f'{path}: holds a {type(obj).__name__}, not a '
                          'dict of tensors; check the file')
  odd = sorted(str(k) for k, v in obj.items() if isinstance(v, Opaque))
  if odd:
    raise CheckpointError(
      f'{path}: entries of unsupported types (not plain tensors): {odd[:8]};'
      ' re-save the state dict with plain tensors')
  out = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
  if not out:
    raise CheckpointError(f'{path}: no tensors found; check the file')
  return out


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

  Raises:
    CheckpointError: an array of a dtype the format cannot store.
  """
  path = os.fspath(path)
  d = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=d, prefix='.tmp-', suffix='.part')
  os.close(fd)
  try:
    if path.endswith('.safetensors'):
      write_safetensors(state, tmp)
    else:
      import torch  # lazily: optional dependency

      sd = collections.OrderedDict(
        (k, torch.from_numpy(np.array(v, order='C'))) for k, v in
        state.items())
      wrap = path.endswith('.ckpt') if lightning is None else lightning
      torch.save({'state_dict': sd} if wrap else sd, tmp)
    os.replace(tmp, path)
  except FormatError as e:
    raise CheckpointError(f'{path}: {e}; convert it first') from None
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
