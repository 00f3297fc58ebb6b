"""RGB student with the neutral reference, distilled from a frozen teacher.

  python -m jaxpain.train --config configs/student_distill.py:teacher=runs/teacher \
      --workdir runs/student
  python -m jaxpain.train \
      --config configs/student_distill.py:runlocal,data=toy,teacher=/tmp/teacher \
      --workdir /tmp/student            # CPU smoke run

One jitted step: released task loss + feature distillation (cosine on CLS')
+ output distillation (PSPI / AU), weights in config.distill. The teacher's
model config is read from its own workdir.
"""

from jaxpain.train import config as config_lib


def get_config(arg=None):
  c = config_lib.base_config()
  c.mode = "student"
  c.teacher.required = True
  c.distill.feature_weight = 1.0
  c.distill.feature_loss = "cosine"
  c.distill.output_weight = 1.0
  config_lib.apply_args(c, config_lib.parse_arg(arg))
  return c
