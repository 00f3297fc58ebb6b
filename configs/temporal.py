"""PainDiffusion in AU space: the ~5 M diffusion-forcing model (issue 18).

  python -m jaxpain.temporal simulate --config configs/temporal.py \
      --out runs/temporal/data
  python -m jaxpain.temporal train --config configs/temporal.py \
      --workdir runs/temporal/df
  ...configs/temporal.py:small        the end-to-end job's ~1 M setting
  ...configs/temporal.py:runlocal     seconds-long smoke run

See docs/temporal.md for the recipe and jaxpain/temporal/config.py for
every field.
"""

from jaxpain.temporal import config as config_lib
from jaxpain.train.config import parse_arg


def get_config(arg=None):
  c = config_lib.base_config()
  config_lib.apply_args(c, parse_arg(arg))
  return c
