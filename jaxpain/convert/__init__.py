"""Weight import/export between PyTorch checkpoints and jaxpain models.

Reading never executes code from a file (`torch_files`): safetensors is
parsed directly and PyTorch zip checkpoints (`.pt`, `.pth`, `.bin`,
Lightning `.ckpt`; the format is told by content) go through a whitelist
unpickler that rebuilds tensors as numpy arrays; `read_state_dict` turns any
other object of a Lightning file into an inert placeholder. Neither torch
nor jax is needed to read: the model-side names (`weights`) are imported on
first use (PEP 562), so `jaxpain.convert.torch_files` stays light.
"""

from __future__ import annotations

import importlib

from jaxpain.convert.checkpoint_io import (
  CheckpointError,
  read_state_dict,
  write_state_dict,
)

_LAZY = {name: 'jaxpain.convert.weights' for name in (
  'export_backbone', 'export_vitpain', 'load_timm_backbone', 'load_vitpain',
  'vit_from_timm', 'vitpain_from_checkpoint')}

__all__ = ['CheckpointError', 'read_state_dict', 'write_state_dict',
           *sorted(_LAZY)]


def __getattr__(name: str):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
