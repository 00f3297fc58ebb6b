"""Report files: tables (JSON + Markdown) and figures (PNG)."""

import json
import math

import numpy as np
from PIL import Image

from jaxpain.eval import metrics, report


def test_split_report_writes_every_file(tmp_path, fab):
  rng = np.random.default_rng(0)
  t = fab.pspi.astype(float)
  p = np.clip(t + rng.normal(0, 1, t.size), 0, 16)
  au_p = fab.au + rng.normal(0, .5, fab.au.shape)
  m = metrics.pspi_metrics(t, p, t, p)
  m.update(metrics.au_metrics(fab.au, au_p, t))
  files = report.write_split_report(
      str(tmp_path), {"metrics": m, "pspi_true": t, "pspi_pred": p,
                      "au_true": fab.au, "au_pred": au_p,
                      "keys": list(fab.key), "info": {"n": len(t)}},
      get_image=fab.image, title="fabricated")
  assert set(files) == {"metrics_json", "metrics_md", "scatter", "roc",
                        "au_errors", "worst"}
  js = json.loads((tmp_path / "metrics.json").read_text())
  assert js["metrics"]["pearson"] == m["pearson"]
  md = (tmp_path / "metrics.md").read_text()
  assert f"| Pearson r | {m['pearson']:.3f} |" in md
  for name in ("scatter", "roc", "au_errors", "worst"):
    with Image.open(files[name]) as im:
      assert im.size[0] > 100 and im.size[1] > 100
  assert not list(tmp_path.glob("*.tmp-*"))


def test_cv_table_and_nan_as_null(tmp_path):
  folds = [{"pearson": .4, "auroc_3": math.nan}, {"pearson": .6,
                                                  "auroc_3": .7}]
  agg = metrics.aggregate(folds)
  md = report.cv_markdown(folds, agg, "cv", notes=["model selection: last"])
  assert "| Pearson r | 0.400 | 0.600 | 0.500 ± " in md
  assert "| AUROC PSPI>=3 | n/a | 0.700 | 0.700 ± n/a | 1 |" in md
  assert "- model selection: last" in md
  report.write_json({"agg": agg}, str(tmp_path / "x.json"))
  js = json.loads((tmp_path / "x.json").read_text())
  assert js["agg"]["auroc_3"]["values"] == [None, 0.7]
  assert js["agg"]["auroc_3"]["ci95"] is None
