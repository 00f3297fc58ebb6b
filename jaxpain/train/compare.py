"""Ablation: the distilled student against the same student without the
teacher and without the neutral reference, on held-out identities.

  python -m jaxpain.train.compare \
      --teacher_config configs/teacher.py:runlocal,data=toy/100 \
      --student_config configs/student_distill.py:runlocal,data=toy/100 \
      --workdir /tmp/compare

Trains the teacher once (or reuses --teacher_workdir), then each student
variant in its own sub-folder with the same seed, data and schedule, and
writes `comparison.json` (test MAE / Pearson r / RMSE / AU MAE per variant)
and `comparison.png`. Each sub-run resumes like any run, so an interrupted
comparison continues where it stopped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import ml_collections

from jaxpain.train import trainer

# name -> (distil from the teacher, neutral reference)
VARIANTS = {
    "student_distill": (True, True),
    "no_teacher": (False, True),
    "no_neutral": (True, False),
    "neither": (False, False),
}


def variant_config(student: ml_collections.ConfigDict, name: str,
                   teacher_workdir: str | None) -> ml_collections.ConfigDict:
  """The student config of one variant."""
  use_teacher, use_neutral = VARIANTS[name]
  c = ml_collections.ConfigDict(student.to_dict())
  c.mode = "student"
  c.model.use_neutral = use_neutral
  c.teacher.workdir = teacher_workdir if use_teacher else None
  c.teacher.required = use_teacher
  return c


def run_comparison(student: ml_collections.ConfigDict, workdir: str,
                   teacher: ml_collections.ConfigDict | None = None,
                   teacher_workdir: str | None = None,
                   variants: Sequence[str] = tuple(VARIANTS)) -> dict:
  """Trains the variants and returns {variant: test metrics}."""
  if teacher_workdir is None:
    if teacher is None:
      raise ValueError("give a teacher config or a trained teacher workdir")
    teacher_workdir = os.path.join(workdir, "teacher")
    trainer.train_and_evaluate(teacher, teacher_workdir)
  table = {}
  for name in variants:
    result = trainer.train_and_evaluate(
        variant_config(student, name, teacher_workdir),
        os.path.join(workdir, name))
    table[name] = dict(result.get("test", {}), best_step=result["best_step"])
  os.makedirs(workdir, exist_ok=True)
  tmp = os.path.join(workdir, "comparison.json.tmp")
  with open(tmp, "w") as f:
    json.dump(table, f, indent=2)
  os.replace(tmp, os.path.join(workdir, "comparison.json"))
  plot(table, os.path.join(workdir, "comparison.png"))
  return table


def plot(table: dict, png: str) -> str:
  """Bar charts of test MAE and Pearson r per variant."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names = list(table)
  fig, axes = plt.subplots(1, 2, figsize=(8, 3))
  for ax, key, title in ((axes[0], "mae", "test MAE (PSPI, lower better)"),
                         (axes[1], "pearson_r", "test Pearson r (higher)")):
    ax.bar(names, [table[n].get(key, float("nan")) for n in names])
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
  fig.tight_layout()
  fig.savefig(png + ".tmp.png", dpi=90)
  plt.close(fig)
  os.replace(png + ".tmp.png", png)
  return png


def main(argv):
  del argv
  from absl import flags

  f = flags.FLAGS
  teacher = f["teacher_config"].value if f.teacher_config else None
  table = run_comparison(f["student_config"].value, f.workdir, teacher,
                         f.teacher_workdir)
  print(json.dumps(table, indent=2))


if __name__ == "__main__":
  from absl import app, flags
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("student_config", None, "student config",
                                  lock_config=False)
  config_flags.DEFINE_config_file("teacher_config", None, "teacher config",
                                  lock_config=False)
  flags.DEFINE_string("teacher_workdir", None, "an already trained teacher")
  flags.DEFINE_string("workdir", None, "output folder")
  flags.mark_flags_as_required(["student_config", "workdir"])
  app.run(main)
