"""Fine-tuning (e.g. on UNBC-McMaster) from a run or from PyTorch weights.

  python -m jaxpain.train \
      --config configs/finetune.py:init=runs/student,data=<dataset> \
      --workdir runs/finetune
  python -m jaxpain.train --config configs/finetune.py:torch=vitpain.ckpt,...
  python -m jaxpain.train --config configs/finetune.py:timm=dinov3.safetensors,...
  python -m jaxpain.train \
      --config configs/finetune.py:runlocal,data=toy,init=/tmp/baseline \
      --workdir /tmp/finetune

Released UNBC recipe (reference.md §B.2): batch 100, 50 epochs, lr 1e-4,
wd 0.1, w_au 0.1, dropout 0.5, neutral reference on, UNBC augmentations
(flip 0.3, rotation 15 deg, brightness/contrast 0.2), model selection by
Pearson r. A workdir checkpoint still wins over init (resume order).
"""

from jaxpain.train import config as config_lib


def get_config(arg=None):
  c = config_lib.base_config()
  c.mode = "student"
  c.batch_size = 100
  c.eval_batch_size = 100
  c.num_epochs = 50.0
  c.loss.au_weight = 0.1
  c.augment.update(dict(rotate_deg=15.0, brightness=0.2, contrast=0.2,
                        saturation=0.0, hue=0.0, translate=0.0,
                        scale=(1.0, 1.0), blur_kernel=1))
  c.best_metric = "val/pearson_r"
  c.best_mode = "max"
  config_lib.apply_args(c, config_lib.parse_arg(arg))
  return c
