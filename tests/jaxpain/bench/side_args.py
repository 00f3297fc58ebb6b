"""Arguments a benchmark side is built from, as scripts/bench_train.py
parses them: a tiny ViTPain on the GPU unless overridden."""

import argparse


def side_args(**kw) -> argparse.Namespace:
  a = dict(device='gpu', variant='mu/16', image_size=32, lora_rank=8,
           no_neutral=False, dinov3=False, attention='auto',
           no_shared_base=False, remat=False, batch=4, peak_gemm=256,
           no_augment=True, prng='threefry', torch_amp='auto',
           resolved_dtype='bfloat16')
  a.update(kw)
  return argparse.Namespace(**a)
