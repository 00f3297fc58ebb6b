"""The PainDiffusion release checkpoint: its layout, on the shared reader.

Why: the released PainDiffusion weights (reference §G.5) are a torch pickle
named `model.safetensors` holding `{'state_dict': ..., 'config': ...}`.
Reading it safely (no torch, no code from the file) is the job of
`jaxpain.convert.torch_files`, shared with the ViTPain import; this module
only checks the release's layout. `CheckpointError` is the shared one.
"""

from __future__ import annotations

import os

import numpy as np

from jaxpain.convert.torch_files import (
  CheckpointError,
  file_format,
  read_torch_file,
)

__all__ = ['CheckpointError', 'load_paindiffusion_checkpoint']


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
  if file_format(path) == 'safetensors':
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
