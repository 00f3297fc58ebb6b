"""Weight import/export between PyTorch checkpoints and jaxpain models.

Reading never executes code from a file: safetensors is parsed directly and
PyTorch zip checkpoints (`.pt`, `.pth`, `.bin`, Lightning `.ckpt`) go through
a restricted unpickler that rebuilds tensors as numpy arrays and turns every
other object into an inert placeholder. torch is not needed to import.
"""

from jaxpain.convert.checkpoint_io import (
  CheckpointError,
  read_state_dict,
  write_state_dict,
)
from jaxpain.convert.weights import (
  export_backbone,
  export_vitpain,
  load_timm_backbone,
  load_vitpain,
  vit_from_timm,
  vitpain_from_checkpoint,
)

__all__ = [
  'CheckpointError', 'read_state_dict', 'write_state_dict',
  'load_timm_backbone', 'load_vitpain', 'export_backbone', 'export_vitpain',
  'vit_from_timm', 'vitpain_from_checkpoint',
]
