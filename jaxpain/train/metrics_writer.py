"""Metrics out: JSONL (one line per log), TensorBoard events, a PNG of curves.

Only process 0 writes. JSONL lines are appended and flushed at once, so a
killed run keeps everything logged; after a resume, steps between the last
checkpoint and the kill are logged again, and readers keep the LAST line per
(step, split) (`read_jsonl`).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping

import jax

PLOTTED = ("loss", "loss_task", "distill_feature", "distill_output", "mae",
           "lr")


class MetricsWriter:
  """Writes `metrics.jsonl`, TensorBoard events and `curves.png`."""

  def __init__(self, workdir: str, enabled: bool | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.png = os.path.join(workdir, "curves.png")
    self._tb = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      self._tb = _summary_writer_class()(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, split: str, metrics: Mapping[str, float]):
    if not self.enabled:
      return
    row = {"step": int(step), "split": split}
    row.update({k: float(v) for k, v in metrics.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    for k, v in metrics.items():
      if math.isfinite(float(v)):
        self._tb.add_scalar(f"{split}/{k}", float(v), int(step))
    self._tb.flush()

  def plot(self) -> str | None:
    """Draws train/val curves from the JSONL into `curves.png`."""
    if not self.enabled or not os.path.exists(self.path):
      return None
    return plot_curves(read_jsonl(self.path), self.png)

  def close(self):
    if self._tb is not None:
      self._tb.close()


def _summary_writer_class():
  """tensorboardX's SummaryWriter, without importing torch for it.

  tensorboardX imports torch when it is installed, only to accept torch
  tensors; we log Python floats. In a JAX process that import costs about
  2 CPU-seconds and 700 MB, so it is hidden while tensorboardX loads (unless
  torch is already there).
  """
  if "tensorboardX" in sys.modules or "torch" in sys.modules:
    from tensorboardX import SummaryWriter
    return SummaryWriter
  sys.modules["torch"] = None  # `import torch` raises ImportError
  try:
    from tensorboardX import SummaryWriter
  finally:
    del sys.modules["torch"]
  return SummaryWriter


def read_jsonl(path: str) -> list[dict]:
  """Rows of a metrics.jsonl, the last one per (step, split), by step."""
  rows: dict[tuple, dict] = {}
  with open(path) as f:
    for line in f:
      line = line.strip()
      if line:
        r = json.loads(line)
        rows[(r["step"], r["split"])] = r
  return sorted(rows.values(), key=lambda r: (r["step"], r["split"]))


def plot_curves(rows: list[dict], png: str) -> str:
  """One panel per metric; a line per split. Written atomically."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names = [n for n in PLOTTED if any(n in r for r in rows)]
  fig, axes = plt.subplots(1, max(len(names), 1),
                           figsize=(3.2 * max(len(names), 1), 2.8))
  axes = axes if hasattr(axes, "__len__") else [axes]
  for ax, name in zip(axes, names, strict=False):
    for split in sorted({r["split"] for r in rows}):
      pts = [(r["step"], r[name]) for r in rows
             if r["split"] == split and name in r]
      if pts:
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=split)
    ax.set_title(name)
    ax.set_xlabel("step")
    if name == "lr":
      ax.set_yscale("log")
    ax.legend(fontsize=7)
  fig.tight_layout()
  tmp = png + ".tmp.png"
  fig.savefig(tmp, dpi=90)
  plt.close(fig)
  os.replace(tmp, png)
  return png
