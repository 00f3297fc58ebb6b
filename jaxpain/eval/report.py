"""Evaluation reports: metric tables (JSON + Markdown) and figures (PNG).

A report folder is what people look at after an evaluation, so every
number also gets a picture: predicted-vs-true PSPI, ROC curves at the three
PSPI cut-offs, per-AU errors and a contact sheet of the worst predictions
with their images. Files are written under a temporary name and renamed,
so an interrupted run never leaves a half-written report file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from jaxpain.eval import metrics

# Metric order and labels of the tables (reference.md §D table layout).
TABLE_ROWS: tuple[tuple[str, str], ...] = (
    ("mae", "MAE"),
    ("pearson", "Pearson r"),
    ("auroc_1", "AUROC PSPI>=1"),
    ("auroc_2", "AUROC PSPI>=2"),
    ("auroc_3", "AUROC PSPI>=3"),
    ("f1_1", "F1 PSPI>=1 (train-cal.)"),
    ("f1_2", "F1 PSPI>=2 (train-cal.)"),
    ("f1_3", "F1 PSPI>=3 (train-cal.)"),
    ("f1_macro", "macro F1 (train-cal.)"),
    ("au_pspi_mae", "MAE of AU-derived PSPI"),
    ("mae_au_mean", "mean AU MAE"),
)


def _atomic(path: str, write: Callable[[str], None]) -> str:
  """Run write(tmp) then rename tmp to `path`."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  root, ext = os.path.splitext(path)
  tmp = f"{root}.tmp-{os.getpid()}{ext}"
  try:
    write(tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path


def _clean(x):
  """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python."""
  if isinstance(x, Mapping):
    return {str(k): _clean(v) for k, v in x.items()}
  if isinstance(x, list | tuple):
    return [_clean(v) for v in x]
  if isinstance(x, np.ndarray):
    return _clean(x.tolist())
  if isinstance(x, np.generic):
    x = x.item()
  if isinstance(x, float) and not math.isfinite(x):
    return None
  return x


def write_json(obj, path: str) -> str:
  """Write `obj` as indented JSON (NaN written as null)."""
  def w(tmp):
    with open(tmp, "w") as f:
      json.dump(_clean(obj), f, indent=2, sort_keys=False)
      f.write("\n")
  return _atomic(path, w)


def write_text(text: str, path: str) -> str:
  def w(tmp):
    with open(tmp, "w") as f:
      f.write(text)
  return _atomic(path, w)


def _fmt(v, digits=3) -> str:
  if v is None or (isinstance(v, float) and not math.isfinite(v)):
    return "n/a"
  return f"{v:.{digits}f}"


def metrics_markdown(m: Mapping[str, float], title: str) -> str:
  """One-split metrics as a two-column Markdown table."""
  lines = [f"# {title}", "", "| metric | value |", "|---|---|"]
  for key, label in TABLE_ROWS:
    if key in m:
      lines.append(f"| {label} | {_fmt(m[key])} |")
  for key in sorted(m):
    if key.startswith("mae_AU"):
      lines.append(f"| MAE {key[4:]} | {_fmt(m[key])} |")
  if "n" in m:
    lines.append(f"| frames | {int(m['n'])} |")
  return "\n".join(lines) + "\n"


def cv_markdown(per_fold: Sequence[Mapping[str, float]],
                agg: Mapping[str, Mapping], title: str,
                notes: Sequence[str] = ()) -> str:
  """Cross-validation table: one column per fold, then mean +- 95% CI.

  The +- is the half-width of the t-based 95% confidence interval of the
  fold mean (not the SD); `k` counts the folds where the metric is defined.
  """
  k = len(per_fold)
  head = "| metric | " + " | ".join(f"fold {i}" for i in range(k))
  lines = [f"# {title}", "", head + " | mean ± 95% CI | k |",
           "|---|" + "---|" * (k + 2)]
  for key, label in TABLE_ROWS:
    if key not in agg:
      continue
    a = agg[key]
    cells = " | ".join(_fmt(f.get(key)) for f in per_fold)
    lines.append(f"| {label} | {cells} | {_fmt(a['mean'])} ± "
                 f"{_fmt(a['ci95'])} | {a['k']} |")
  lines += [""] + [f"- {n}" for n in notes]
  return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------


def _pyplot():
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  return plt


def _save(fig, path: str) -> str:
  plt = _pyplot()
  try:
    return _atomic(path, lambda tmp: fig.savefig(tmp, dpi=120))
  finally:
    plt.close(fig)


def scatter_plot(y_true, y_pred, path: str, title: str = "") -> str:
  """Predicted vs true PSPI, jittered on x (true PSPI is an integer)."""
  plt = _pyplot()
  t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
  jitter = np.random.default_rng(0).uniform(-0.15, 0.15, t.size)
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.scatter(t + jitter, p, s=6, alpha=0.35)
  ax.plot([0, 16], [0, 16], "r--", lw=1)
  ax.set(xlim=(-0.5, 16.5), ylim=(-0.5, 16.5), xlabel="true PSPI",
         ylabel="predicted PSPI",
         title=title or f"r = {metrics.pearson_r(t, p):.3f}, "
         f"MAE = {metrics.mae(t, p):.2f}")
  ax.set_aspect("equal")
  fig.tight_layout()
  return _save(fig, path)


def roc_plot(y_true, y_pred, path: str,
             thresholds: Sequence[int] = metrics.THRESHOLDS) -> str:
  """ROC curves of the continuous prediction at PSPI >= t."""
  plt = _pyplot()
  t = np.asarray(y_true, float)
  fig, ax = plt.subplots(figsize=(5, 5))
  for thr in thresholds:
    lab = t >= thr
    if lab.all() or not lab.any():
      ax.plot([], [], label=f"PSPI>={thr}: single class, undefined")
      continue
    fpr, tpr = metrics.roc_curve(lab, y_pred)
    ax.plot(fpr, tpr, label=f"PSPI>={thr}: AUROC "
            f"{metrics.auroc(lab, y_pred):.3f}")
  ax.plot([0, 1], [0, 1], "k:", lw=1)
  ax.set(xlabel="false-positive rate", ylabel="true-positive rate",
         title="ROC", xlim=(0, 1), ylim=(0, 1))
  ax.legend(loc="lower right", fontsize=8)
  fig.tight_layout()
  return _save(fig, path)


def au_error_plot(au_true, au_pred, path: str) -> str:
  """Bar chart of the mean absolute error of each AU."""
  plt = _pyplot()
  err = metrics.au_mae(au_true, au_pred)
  names = list(metrics.AU_NAMES)
  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.bar(names, [err[f"mae_{n}"] for n in names], color="tab:orange")
  ax.set(ylabel="mean absolute error", title="per-AU error")
  fig.tight_layout()
  return _save(fig, path)


def worst_sheet(get_image: Callable[[int], np.ndarray], y_true, y_pred,
                path: str, count: int = 16, cols: int = 4,
                captions: Sequence[str] | None = None) -> str:
  """Contact sheet of the `count` frames with the largest |error|."""
  plt = _pyplot()
  t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
  order = np.argsort(-np.abs(t - p), kind="stable")[:count]
  rows = max(1, math.ceil(len(order) / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows),
                           squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for ax, i in zip(axes.ravel(), order, strict=False):
    ax.imshow(get_image(int(i)))
    cap = f"true {t[i]:.0f} / pred {p[i]:.1f}"
    if captions is not None:
      cap = f"{captions[i]}\n{cap}"
    ax.set_title(cap, fontsize=7)
  fig.suptitle(f"{len(order)} worst predictions (|error|)", fontsize=9)
  fig.tight_layout()
  return _save(fig, path)


def write_split_report(out_dir: str, result: Mapping, get_image=None,
                       title: str = "Evaluation") -> dict[str, str]:
  """The report folder of one evaluated split.

  Args:
    out_dir: folder to write into (created).
    result: {"metrics": {...}, "pspi_true", "pspi_pred", optionally
      "au_true", "au_pred", "keys", and anything else JSON-able under
      "info"}.
    get_image: i -> uint8 image of evaluated frame i (for the worst sheet).
    title: Markdown title.

  Returns:
    Name -> path of every file written.
  """
  m = result["metrics"]
  t, p = result["pspi_true"], result["pspi_pred"]
  files = {
      "metrics_json": write_json({"metrics": m, "info": result.get("info")},
                                 os.path.join(out_dir, "metrics.json")),
      "metrics_md": write_text(metrics_markdown(m, title),
                               os.path.join(out_dir, "metrics.md")),
      "scatter": scatter_plot(t, p, os.path.join(out_dir, "scatter.png")),
      "roc": roc_plot(t, p, os.path.join(out_dir, "roc.png")),
  }
  if result.get("au_pred") is not None:
    files["au_errors"] = au_error_plot(result["au_true"], result["au_pred"],
                                       os.path.join(out_dir, "au_errors.png"))
  if get_image is not None:
    files["worst"] = worst_sheet(get_image, t, p,
                                 os.path.join(out_dir, "worst.png"),
                                 captions=result.get("keys"))
  return files
