"""Baseline: full-sequence diffusion, no forcing (reference.md §G.5).

The same network and recipe as configs/temporal.py, but ONE noise level per
window in training; sampling denoises the new tokens in lockstep (u = 0)
and continues a sequence by re-noising its context to the current level
(the replacement method), since the model never saw clean tokens beside
noisy ones.

  python -m jaxpain.temporal train --config configs/temporal_fullseq.py:small \
      --workdir runs/temporal/full
"""

from jaxpain.temporal import config as config_lib
from jaxpain.train.config import parse_arg


def get_config(arg=None):
  c = config_lib.base_config()
  c.diffusion.noise_mode = "full"
  c.sampler.replace_context = True
  c.sampler.uncertainty = 0.0
  config_lib.apply_args(c, parse_arg(arg))
  return c
