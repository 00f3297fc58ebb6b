"""Pictures and tables of an evaluation: PNG plots and a markdown table.

`plot_segments`: per test segment, the stimulus, PSPI(t) of the ground
truth against every method, and three pain AUs of the ground truth
against the first model's samples. `plot_metrics`: metric bars with
mean +- sd over seeds. `table`: the same numbers as markdown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from synth import sequences as sq

SHOWN_AUS = ("AU4", "AU7", "AU10")
TABLE_METRICS = ("PainCorr", "PainCorr_max", "PainSim", "PainDist",
                 "PainAcc", "PainDivrs", "PainVar", "jerk")
ARROWS = {"PainCorr": "↑", "PainCorr_max": "↑", "PainSim": "↓",
          "PainDist": "↓", "PainAcc": "↓", "PainDivrs": "↑",
          "PainVar": "≈GT", "jerk": "≈GT"}


def _plt():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def _save(fig, path: str) -> str:
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=100)
  os.replace(tmp, path)
  return path


def plot_segments(result: Mapping, out_dir: str, rows: int = 2) -> list[str]:
  """One PNG per shown segment (stimulus, PSPI, AUs); returns the paths."""
  plt = _plt()
  seg, gens = result["segments"], result["generated"]
  ctx = result["context_frames"]
  t = np.arange(seg["stim"].shape[1]) / sq.FPS
  first = next(iter(gens))
  paths = []
  for n in range(min(rows, seg["stim"].shape[0])):
    fig, ax = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    ax[0].plot(t, seg["stim"][n], color="tab:red")
    ax[0].set_ylabel("stimulus (drive)")
    ax[0].set_title(f"test subject {int(seg['subject_id'][n])}: expressive"
                    f"ness {float(seg['expr'][n]):.1f}, emotion "
                    f"{sq.EMOTIONS[int(seg['emotion'][n])]}")
    ax[1].plot(t, sq.pspi(seg["au"][n]), color="k", lw=2, label="ground "
               "truth")
    for name, g in gens.items():
      ax[1].plot(t, sq.pspi(g[0, n]), lw=1, label=name, alpha=0.8)
    ax[1].set_ylabel("PSPI")
    ax[1].legend(fontsize=7, ncol=3)
    for k, au in enumerate(SHOWN_AUS):
      i = sq.AU_INDEX[au]
      col = f"C{k}"
      ax[2].plot(t, seg["au"][n, :, i], color=col, lw=2, label=f"{au} GT")
      ax[2].plot(t, gens[first][0, n, :, i], color=col, lw=1, ls="--",
                 label=f"{au} {first}")
    ax[2].set_ylabel("AU intensity")
    ax[2].set_xlabel("time (s)")
    ax[2].legend(fontsize=7, ncol=3)
    for a in ax:
      a.axvspan(0, ctx / sq.FPS, color="0.9")  # ground-truth context
    fig.tight_layout()
    paths.append(_save(fig, os.path.join(out_dir, f"segment_{n}.png")))
    plt.close(fig)
  return paths


def aggregate(runs: Sequence[Mapping[str, Mapping[str, float]]]
              ) -> dict[str, dict[str, tuple[float, float]]]:
  """[{method: {metric: v}}] over seeds -> {method: {metric: (mean, sd)}}."""
  out: dict[str, dict[str, tuple[float, float]]] = {}
  for method in runs[0]:
    out[method] = {}
    for m in runs[0][method]:
      vals = np.array([r[method][m] for r in runs], np.float64)
      sd = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
      out[method][m] = (float(vals.mean()), sd)
  return out


def table(agg: Mapping[str, Mapping[str, tuple[float, float]]],
          reference: Mapping[str, float] | None = None) -> str:
  """Markdown: one row per method, mean ± sd per metric."""
  cols = [m for m in TABLE_METRICS if m in next(iter(agg.values()))]
  head = "| method | " + " | ".join(f"{m} {ARROWS[m]}" for m in cols) + " |"
  lines = [head, "|---" * (len(cols) + 1) + "|"]
  for method, vals in agg.items():
    cells = [f"{vals[m][0]:.3f} ± {vals[m][1]:.3f}" for m in cols]
    lines.append(f"| {method} | " + " | ".join(cells) + " |")
  if reference:
    cells = [f"{reference[m]:.3f}" if m in reference else "" for m in cols]
    lines.append("| ground truth | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def plot_metrics(agg: Mapping[str, Mapping[str, tuple[float, float]]],
                 path: str, names: Sequence[str] = ("PainCorr", "PainSim",
                                                    "PainDist", "PainAcc")
                 ) -> str:
  """Bars of mean ± sd over seeds, one panel per metric."""
  plt = _plt()
  methods = list(agg)
  fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.2))
  for ax, m in zip(np.atleast_1d(axes), names, strict=True):
    means = [agg[k][m][0] for k in methods]
    sds = [agg[k][m][1] for k in methods]
    ax.bar(range(len(methods)), means, yerr=sds, capsize=3,
           color=[f"C{i}" for i in range(len(methods))])
    ax.set_xticks(range(len(methods)), methods, rotation=40, ha="right",
                  fontsize=8)
    ax.set_title(f"{m} {ARROWS.get(m, '')}")
  fig.tight_layout()
  path = _save(fig, path)
  plt.close(fig)
  return path
