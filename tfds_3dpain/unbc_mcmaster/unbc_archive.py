"""Reader for the original UNBC-McMaster archive folder layout.

What we assume about the distribution (Lucey et al., FG 2011; checked
against public loaders of the archive, not against the licensed files):

    <root>/Images/<subject>/<sequence>/<frame>.png
        e.g. Images/042-ll042/ll042t1aaaff/ll042t1aaaff001.png
    <root>/Frame_Labels/PSPI/<subject>/<sequence>/<frame>_facs.txt
        one number, the frame's PSPI (e.g. "   3.0000000e+00")
    <root>/Frame_Labels/FACS/<subject>/<sequence>/<frame>_facs.txt
        one row per coded AU: "AU intensity [more columns]" in scientific
        notation; an empty file means no AU was coded on that frame
    <root>/AAM_landmarks/<subject>/<sequence>/<frame>_aam.txt   (optional)
        66 rows "x y", pixel coordinates of the AAM face landmarks

`<root>` may also be the folder one level above (an unpacked archive often
adds a top folder). Rules, counted in `UnbcData.stats`:
- a frame image without a PSPI file is left out (`missing_pspi`);
- a frame without a FACS file gets AU = 0 (`missing_facs`);
- AU43 (eyes closed) is 1 when listed with any intensity, because it is
  coded as present/absent; other AUs keep their 0..5 intensity;
- the PSPI file is the label; frames where it disagrees with the PSPI of the
  FACS AUs are counted (`pspi_au_mismatch`), never silently changed.
"""

from __future__ import annotations

import os
import re

import numpy as np

from synth import records
from tfds_3dpain.unbc_mcmaster import table

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
CROP_MODES = ("auto", "landmarks", "none")
# Face box = landmark box grown by this fraction per side: AAM points stop at
# the brows, and AU4 (brow lowerer) needs the forehead above them.
CROP_MARGIN = 0.25


def find_archive_root(root: str) -> str | None:
  """The folder holding Images/ and Frame_Labels/, at `root` or one below."""
  cands = [root] + sorted(
      os.path.join(root, d) for d in os.listdir(root)
      if os.path.isdir(os.path.join(root, d)))
  for c in cands:
    if os.path.isdir(os.path.join(c, "Images")) and os.path.isdir(
        os.path.join(c, "Frame_Labels", "PSPI")):
      return c
  return None


def _frame_number(stem: str) -> int:
  m = re.search(r"(\d+)$", stem)
  return int(m.group(1)) if m else -1


def parse_pspi_file(path: str) -> float:
  """The PSPI of one `<frame>_facs.txt` under Frame_Labels/PSPI."""
  with open(path) as f:
    text = f.read().split()
  if len(text) != 1:
    raise table.UnbcFormatError(
        f"{path}: a PSPI label file must hold one number, found {text[:5]}")
  try:
    return float(text[0])
  except ValueError as e:
    raise table.UnbcFormatError(f"{path}: not a number: {text[0]!r}") from e


def parse_facs_file(path: str) -> np.ndarray:
  """The (6,) AU vector of one FACS file; AUs outside the PSPI set ignored."""
  au = np.zeros(len(table.AU_NUMBERS), dtype=np.float32)
  with open(path) as f:
    for ln, line in enumerate(f, 1):
      cols = line.split()
      if not cols:
        continue
      try:
        num, inten = int(float(cols[0])), float(cols[1])
      except (ValueError, IndexError) as e:
        raise table.UnbcFormatError(
            f"{path}:{ln}: expected 'AU intensity ...', got {line!r}") from e
      if num in table.AU_NUMBERS:
        j = table.AU_NUMBERS.index(num)
        au[j] = 1.0 if num == 43 else max(au[j], inten)
  return au


def parse_landmarks(path: str) -> np.ndarray:
  """(K, 2) landmark array of an AAM file."""
  pts = np.loadtxt(path, dtype=np.float64, ndmin=2)
  if pts.shape[1] < 2:
    raise table.UnbcFormatError(f"{path}: expected rows 'x y', got {pts.shape}")
  return pts[:, :2]


def face_box(pts: np.ndarray, hw: tuple[int, int],
             margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
  """Square (top, left, bottom, right) box around landmarks, inside image."""
  (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
  side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
  side = max(1.0, min(side, float(min(hw))))
  cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
  left = int(round(min(max(cx - side / 2.0, 0.0), hw[1] - side)))
  top = int(round(min(max(cy - side / 2.0, 0.0), hw[0] - side)))
  s = int(round(side))
  return top, left, top + s, left + s


class _ArchiveImages:
  """Row -> decoded (and optionally face-cropped) RGB frame."""

  def __init__(self, paths: list[str], landmark_paths: list[str | None]):
    self.paths, self.landmark_paths = paths, landmark_paths

  def __call__(self, row: int) -> np.ndarray:
    from PIL import Image  # noqa: PLC0415

    with Image.open(self.paths[row]) as im:
      img = np.asarray(im.convert("RGB"))
    lm = self.landmark_paths[row]
    if lm is not None:
      top, left, bottom, right = face_box(parse_landmarks(lm), img.shape[:2])
      img = img[top:bottom, left:right]
    return img


def _scan(base: str):
  """Yield (subject, sequence, stem, image path) of every frame image."""
  img_root = os.path.join(base, "Images")
  for subj in sorted(os.listdir(img_root)):
    sdir = os.path.join(img_root, subj)
    if not os.path.isdir(sdir):
      continue
    for seq in sorted(os.listdir(sdir)):
      qdir = os.path.join(sdir, seq)
      if not os.path.isdir(qdir):
        continue
      for fn in sorted(os.listdir(qdir)):
        stem, ext = os.path.splitext(fn)
        if ext.lower() in IMAGE_EXTS:
          yield subj, seq, stem, os.path.join(qdir, fn)


def read_archive(root: str, crop: str = "auto") -> table.UnbcData:
  """Read the archive layout (see the module docstring) into a frame table.

  Args:
    root: the archive folder (or its parent).
    crop: "auto" face-crops with AAM landmarks where they exist,
      "landmarks" requires a landmark file for every frame, "none" keeps
      full frames.
  """
  if crop not in CROP_MODES:
    raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
  base = find_archive_root(root)
  if base is None:
    raise table.UnbcFormatError(
        f"{root}: no Images/ and Frame_Labels/PSPI/ folders (here or one "
        "level down); see tfds_3dpain.unbc_mcmaster.unbc_archive for the layout")
  lab = os.path.join(base, "Frame_Labels")
  stats = {"missing_pspi": 0, "missing_facs": 0, "missing_landmarks": 0,
           "pspi_au_mismatch": 0, "nan_pspi": 0}
  cols = {k: [] for k in ("name", "seq", "frame", "au", "pspi", "key",
                          "path", "lm")}
  for subj, seq, stem, path in _scan(base):
    rel = os.path.join(subj, seq, stem)
    pspi_path = os.path.join(lab, "PSPI", rel + "_facs.txt")
    if not os.path.exists(pspi_path):
      stats["missing_pspi"] += 1
      continue
    facs_path = os.path.join(lab, "FACS", rel + "_facs.txt")
    if os.path.exists(facs_path):
      au = parse_facs_file(facs_path)
    else:
      au = np.zeros(len(table.AU_NUMBERS), np.float32)
      stats["missing_facs"] += 1
    pspi = parse_pspi_file(pspi_path)
    if not np.isfinite(pspi):
      raise table.UnbcFormatError(f"{pspi_path}: PSPI is {pspi}")
    if abs(float(records.pspi(au)) - pspi) > 1e-6 and os.path.exists(
        facs_path):
      stats["pspi_au_mismatch"] += 1
    lm = os.path.join(base, "AAM_landmarks", rel + "_aam.txt")
    if crop == "none" or not os.path.exists(lm):
      if crop == "landmarks":
        raise table.UnbcFormatError(
            f"crop='landmarks' but {lm} is missing; use crop='auto' to keep "
            "full frames where landmarks are absent")
      stats["missing_landmarks"] += int(crop != "none")
      lm = None
    for k, v in (("name", subj), ("seq", seq), ("frame", _frame_number(stem)),
                 ("au", au), ("pspi", pspi), ("key", rel), ("path", path),
                 ("lm", lm)):
      cols[k].append(v)
  if not cols["key"]:
    raise table.UnbcFormatError(
        f"{base}: found no frame with both an image under Images/ and a "
        f"label under Frame_Labels/PSPI/ ({stats['missing_pspi']} images "
        "without labels)")
  rows = np.arange(len(cols["key"]))
  return table.make_table(
      cols["name"], cols["seq"], cols["frame"], np.stack(cols["au"]),
      cols["pspi"], cols["key"], _ArchiveImages(cols["path"], cols["lm"]),
      rows, stats, "archive")


def write_archive(data: table.UnbcData, root: str) -> None:
  """Write `data` in the archive layout (test fixtures, format conversion).

  Images are written as PNG; FACS files list the non-zero PSPI AUs.
  """
  from PIL import Image  # noqa: PLC0415

  for i in range(len(data)):
    seq = data.sequence[i] or f"{data.subject_name[i].split('-')[-1]}seq"
    stem = f"{seq}{int(data.frame[i]):03d}"
    rel = os.path.join(str(data.subject_name[i]), seq)
    paths = {d: os.path.join(root, d, rel) for d in
             ("Images", "Frame_Labels/PSPI", "Frame_Labels/FACS")}
    for p in paths.values():
      os.makedirs(p, exist_ok=True)
    Image.fromarray(data.image(i)).save(
        os.path.join(paths["Images"], stem + ".png"))
    with open(os.path.join(paths["Frame_Labels/PSPI"], stem + "_facs.txt"),
              "w") as f:
      f.write(f"   {float(data.pspi[i]):.7e}\n")
    with open(os.path.join(paths["Frame_Labels/FACS"], stem + "_facs.txt"),
              "w") as f:
      for num, v in zip(table.AU_NUMBERS, data.au[i], strict=True):
        if v > 0:
          f.write(f"   {float(num):.7e}   {float(v):.7e}   0.0000000e+00"
                  "   0.0000000e+00\n")
