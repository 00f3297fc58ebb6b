"""Heatmap teacher: ViTPain trained on pain-region heatmaps (paper v1/v2).

  python -m jaxpain.train --config configs/teacher.py --workdir runs/teacher
  python -m jaxpain.train --config configs/teacher.py:runlocal,data=toy \
      --workdir /tmp/teacher            # CPU smoke run, seconds

Same architecture and released loss as the student, on heatmaps, without a
neutral reference (a neutral heatmap is empty). Its CLS' features and
outputs are the distillation targets of configs/student_distill.py.
"""

from jaxpain.train import config as config_lib


def get_config(arg=None):
  c = config_lib.base_config()
  c.mode = "teacher"
  c.model.use_neutral = False
  c.augment.enabled = True  # geometric only for heatmaps (no colour jitter)
  config_lib.apply_args(c, config_lib.parse_arg(arg))
  return c
