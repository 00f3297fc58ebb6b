"""The released PainDiffusion model (FLAME space), imported into JAX.

reference.md §G.2-G.4. The authors' checkpoint (`model.safetensors`, a
torch pickle of {'state_dict', 'config'}) is read without executing code
(`jaxpain.temporal.torch_checkpoint`) and mapped onto a Flax NNX port of
their 1-D U-Net:

  unet     the network, its config and the PainDenoiser-style interface
  layers   its blocks (conv, RMSNorm, ResBlock, attention, temporal)
  weights  state_dict -> module, strict; `load_released(path)`
  stream   FLAME frames <-> model space; rollouts with our sampler
"""

from jaxpain.temporal.released.unet import ReleasedConfig, ReleasedDenoiser
from jaxpain.temporal.released.weights import (
    WeightsError,
    from_state_dict,
    load_released,
)

__all__ = ["ReleasedConfig", "ReleasedDenoiser", "WeightsError",
           "from_state_dict", "load_released"]
