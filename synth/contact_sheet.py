"""Contact sheet: one picture that shows what a synthesised dataset holds.

One row per identity, labelled with its demographics. Columns: the neutral
face, three pain expressions (lowest, middle and highest PSPI of the
identity) from view 0, the highest-PSPI expression from the other views,
and the 'hot' heatmaps of the three pain expressions. Every tile is captioned
with its expression, view and PSPI.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from synth import heatmap, records

_BG = (245, 245, 245)
_INK = (20, 20, 20)


def _font(size: int):
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow without FreeType sizes
    return ImageFont.load_default()


def _columns(recs: list[records.ImageRecord]):
  """(title, array, caption) per tile of one identity's row."""
  by = {(r.expression, r.view): r for r in recs}
  views = sorted({r.view for r in recs})
  pains = sorted(
    {r.expression for r in recs if r.expression},
    key=lambda e: (by[(e, 0)].pspi, e),
  )
  picks = [pains[0], pains[len(pains) // 2], pains[-1]] if pains else []
  level = ("lowest", "middle", "highest")
  v0 = by[(0, 0)]
  cols = [
    (
      f"neutral\nview 0 ({v0.yaw_deg:+.0f}°, {v0.pitch_deg:+.0f}°)",
      v0.image,
      "neutral",
    )
  ]
  for e, name in zip(picks, level, strict=True):
    r = by[(e, 0)]
    cols.append((f"{name} PSPI\nview 0", r.image, f"pain {e}: PSPI {r.pspi:g}"))
  if picks:
    for v in views[1:]:
      r = by[(picks[-1], v)]
      cols.append(
        (
          f"highest PSPI\nview {v} ({r.yaw_deg:+.0f}°, {r.pitch_deg:+.0f}°)",
          r.image,
          f"pain {r.expression}: PSPI {r.pspi:g}",
        )
      )
    for e, name in zip(picks, level, strict=True):
      r = by[(e, 0)]
      cols.append(
        (
          f"heatmap (hot)\n{name} PSPI",
          heatmap.colormap(r.heatmap),
          f"heatmap {e}: PSPI {r.pspi:g}",
        )
      )
  return cols


def _row_label(rec: records.ImageRecord) -> str:
  d = rec.demographics
  mix = "/".join(f"{m:.2f}" for m in d.ethnicity_mix)
  return (
    f"identity {rec.identity}: {d.age_group} ({d.age_years:.0f} y), "
    f"{d.gender}, {d.ethnicity} (mix af/as/ca {mix})"
  )


def make_contact_sheet(
  identities: list[list[records.ImageRecord]], tile: int = 160
) -> Image.Image:
  """Builds the sheet from each identity's records (any resolution)."""
  if not identities:
    raise ValueError("a contact sheet needs at least one identity")
  rows = [_columns(recs) for recs in identities]
  ncol = max(len(r) for r in rows)
  fs = max(10, tile // 12)
  font, small = _font(fs + 2), _font(fs)
  head, label, cap = fs * 3 + 8, fs + 8, fs + 6
  row_h = label + tile + cap
  sheet = Image.new(
    "RGB", (ncol * tile + (ncol + 1) * 4, head + len(rows) * row_h), _BG
  )
  draw = ImageDraw.Draw(sheet)
  for c, (title, _, _) in enumerate(max(rows, key=len)):
    draw.multiline_text(
      (4 + c * (tile + 4) + tile // 2, 4),
      title,
      fill=_INK,
      font=small,
      anchor="ma",
      align="center",
    )
  for i, (recs, cols) in enumerate(zip(identities, rows, strict=True)):
    y = head + i * row_h
    draw.text((6, y + 2), _row_label(recs[0]), fill=_INK, font=font)
    for c, (_, arr, caption) in enumerate(cols):
      x = 4 + c * (tile + 4)
      img = Image.fromarray(np.ascontiguousarray(arr)).resize(
        (tile, tile), Image.LANCZOS
      )
      sheet.paste(img, (x, y + label))
      draw.text(
        (x + tile // 2, y + label + tile + cap // 2),
        caption,
        fill=_INK,
        font=small,
        anchor="mm",
      )
  return sheet


def write_contact_sheet(
  out_dir: str, path: str, max_identities: int = 8, tile: int = 160
) -> str:
  """Renders the first finished identities of a dataset into a PNG.

  The file is written to a temporary name and renamed, so a failed run
  never leaves a truncated sheet.
  """
  from synth import store

  done = sorted(store.finished_identities(out_dir))[:max_identities]
  sheet = make_contact_sheet(
    [store.read_identity(out_dir, i) for i in done], tile
  )
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".tmp-sheet-", suffix=".png", dir=folder)
  os.close(fd)
  try:
    os.chmod(tmp, store.FILE_MODE)
    sheet.save(tmp, optimize=True)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise
  return path
