"""jaxpain.bench.jax_side on a GPU (skipped without one).

What differs from CPU: bf16 compute with cuDNN attention, and peak memory
from the device allocator (not host RSS). A tiny model, a few steps; no
speed is asserted.
"""

import math

import pytest

from tests.jaxpain.bench.side_args import side_args


@pytest.mark.gpu
def test_jax_side_trains_in_bf16_with_cudnn_attention_on_gpu():
  from jaxpain.bench import jax_side
  side = jax_side.JaxSide(side_args(), {})
  info = side.info()
  assert info['platform'] == 'gpu' and info['attention'] == 'cudnn'
  assert info['dtype'] == 'bfloat16'
  assert len(side.run('train', 2)) == 2 and len(side.run('eval', 1)) == 1
  mem = side.memory()
  assert mem['device_peak_bytes'] and mem['device_peak_bytes'] > 0
  assert math.isfinite(side.peak() or 0.0)
