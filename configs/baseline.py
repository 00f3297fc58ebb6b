"""The released ViTPain recipe: RGB + neutral reference, no teacher.

  python -m jaxpain.train --config configs/baseline.py:timm=dinov3_vitl16.safetensors \
      --workdir runs/baseline       # released start: pretrained DINOv3 base
  python -m jaxpain.train --config configs/baseline.py:runlocal,data=toy \
      --workdir /tmp/baseline
  ...:runlocal,data=toy,neutral=0   # the same without the neutral reference

Synthetic pretraining as in reference.md §B.2 (batch 48, 150 epochs, AdamW
1e-4 / LoRA 1e-5, cosine to 1e-6, wd 0.1, clip 1.0, w_au 1.0).
"""

from jaxpain.train import config as config_lib


def get_config(arg=None):
  c = config_lib.base_config()
  c.mode = "student"
  config_lib.apply_args(c, config_lib.parse_arg(arg))
  return c
