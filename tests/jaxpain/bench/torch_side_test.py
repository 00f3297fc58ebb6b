"""jaxpain.bench.torch_side on a GPU (skipped without one).

What differs from CPU: fp16 autocast with a GradScaler, as released, and
peak memory from torch's CUDA allocator. A tiny model, a few steps; no
speed is asserted.
"""


import pytest

from tests.jaxpain.bench.side_args import side_args


@pytest.mark.gpu
def test_torch_side_trains_with_fp16_and_a_grad_scaler_on_cuda():
  torch = pytest.importorskip('torch')
  if not torch.cuda.is_available():
    pytest.skip('torch sees no CUDA device')
  from jaxpain.bench import torch_side
  side = torch_side.TorchSide(side_args(), {})
  assert side.info()['amp'] == 'fp16' and side.scaler is not None
  assert len(side.run('train', 2)) == 2
  assert side.memory()['device_peak_bytes'] > 0
