"""Reads the layout of the released 3D-Pain in the manual download folder.

Expected (reference.md §A.5/§A.6; `pain_faces/` may also be the folder
itself):

  <manual_dir>/pain_faces/annotations/<subject>_pain_<k>_annotations.json
  <manual_dir>/pain_faces/meshes_inpainted/
      <subject>_pain_<k>_textured_view_<vvv>_inpainted.jpg
      <subject>_neutral_textured_view_<vvv>_inpainted.jpg
  <manual_dir>/pain_faces/heatmaps/<subject>_pain_<k>_heatmap.png  (optional)
  <manual_dir>/uniform_data_70_20_10_split.csv                     (optional)

`scan()` only lists and parses small files (names, JSON, CSV) and reads
each image's header (format and size, a few bytes); images are decoded
later, per identity, in the workers (official.py). Problems that make the
folder unusable raise `ManualDirError` naming what is missing and where;
problems with single files are collected as `(file name, reason)` notes,
and those files are skipped, never guessed at: a label out of range (AU43
must be 0 or 1), a file that is not an image, an image (or heatmap) whose
size differs from the release's most common size (a batch needs one size;
found here, when the dataset is built, not when training stacks a batch).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import math
import re

from etils import epath
from PIL import Image

from synth import records
from synth.cli_errors import UserError

ANNOTATIONS, IMAGES, HEATMAPS = "annotations", "meshes_inpainted", "heatmaps"
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
_IMAGE_RE = re.compile(
    r"^(?P<subject>.+?)_(?:pain_(?P<pain>\d+)|neutral)_(?:.*_)?view_"
    r"(?P<view>\d+)(?:_.*)?$"
)
_ANNOTATION_RE = re.compile(r"^(?P<base>(?P<subject>.+?)_pain_(?P<pain>\d+))"
                            r"_annotations$")
_HEATMAP_RE = re.compile(r"^(?P<base>.+?_pain_\d+)_heatmap$")
_SUBJECT_INDEX_RE = re.compile(r"(\d+)$")
CSV_SPLITS = {"0": "train", "1": "validation", "2": "test"}
AU_MAX = {name: (1 if name == "AU43" else 5) for name in records.AU_NAMES}


class ManualDirError(UserError):
  """The manual folder cannot be imported; the message lists what to fix."""


@dataclasses.dataclass(frozen=True)
class PainItem:
  """One pain expression of an identity: its labels and files."""

  base: str  # annotation base name, e.g. flame_sample_0000_pain_1
  expression: int
  au: tuple[float, ...]
  pspi: float
  images: dict[int, str]  # view -> image path
  heatmap: str | None


@dataclasses.dataclass(frozen=True)
class IdentityUnit:
  """Everything one worker needs to emit an identity's examples."""

  identity: int
  subject: str
  neutrals: dict[int, str]  # view -> neutral image path
  pain: tuple[PainItem, ...]
  expect_heatmaps: bool


@dataclasses.dataclass
class Scan:
  """Result of `scan`: units per identity, and notes on skipped files."""

  units: dict[int, IdentityUnit]
  notes: list[tuple[str, str]]
  split_csv: epath.Path | None
  pspi_mismatches: list[str]
  annotation_files: frozenset[str] = frozenset()  # bases, valid or not


def find_root(manual_dir: epath.Path) -> epath.Path:
  """The folder holding annotations/ and meshes_inpainted/, or an error."""
  candidates = [manual_dir / "pain_faces", manual_dir]
  for root in candidates:
    if (root / ANNOTATIONS).is_dir() and (root / IMAGES).is_dir():
      return root
  present = sorted(p.name for p in manual_dir.iterdir()) if manual_dir.is_dir() else []
  missing = [
      str(c / sub)
      for c in candidates[:1]
      for sub in (ANNOTATIONS, IMAGES)
      if not (c / sub).is_dir()
  ]
  raise ManualDirError(
      f"The manual folder {manual_dir} is not laid out like the released "
      f"3D-Pain. Missing: {', '.join(missing)} (or the same folders directly "
      f"in {manual_dir}). Found there: {present[:20] or 'nothing'}. Extract "
      "the annotation and meshes_inpainted shards of the Hugging Face dataset "
      "SoroushMehraban/3D-Pain into pain_faces/ (see the dataset card)."
  )


def find_split_csv(manual_dir: epath.Path, root: epath.Path, name: str):
  """The released split CSV if present in a usual place, else None."""
  for folder in (manual_dir, root, manual_dir / "splits",
                 manual_dir / "data" / "splits"):
    if (folder / name).is_file():
      return folder / name
  return None


def _parse_annotation(path: epath.Path) -> tuple[tuple[float, ...], float]:
  """(AUs in AU_NAMES order, stored PSPI); ValueError names the problem."""
  try:
    data = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(
        f"unreadable annotation JSON ({e.__class__.__name__})"
    ) from None
  if not isinstance(data, dict):
    raise ValueError("annotation JSON is not an object")
  missing = [k for k in (*records.AU_NAMES, "PSPI") if k not in data]
  if missing:
    raise ValueError(f"annotation lacks {missing}")
  au = []
  for name in records.AU_NAMES:
    value = data[name]
    if not _number_in(value, 0, AU_MAX[name]):
      raise ValueError(f"{name}={value!r} is outside 0..{AU_MAX[name]}")
    if name == "AU43" and value not in (0, 1):
      raise ValueError(f"AU43={value!r} must be 0 or 1 (eyes open, closed)")
    au.append(float(value))
  if not _number_in(data["PSPI"], 0, 16):
    raise ValueError(f"PSPI={data['PSPI']!r} is outside 0..16")
  return tuple(au), float(data["PSPI"])


def _number_in(value, low: float, high: float) -> bool:
  """A JSON number (not a bool, not NaN) within [low, high]."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and low <= value <= high)


def _image_size(path: epath.Path) -> tuple[int, int] | str:
  """(width, height) from the file's header, or why it is not an image."""
  try:
    with path.open("rb") as f, Image.open(f) as image:
      return image.size
  except (OSError, SyntaxError, ValueError) as e:
    return f"not an image ({e.__class__.__name__}: {e})"


def _keep_common_size(files: dict, sizes: dict, notes, what: str) -> dict:
  """Drops files whose size is not the most common one, with a note.

  Args:
    files: {key: path} of readable files.
    sizes: {path: (width, height)} of those files.
    notes: list collecting (file name, reason) of skipped files.
    what: 'image' or 'heatmap', for the note.
  """
  if not files:
    return files
  counts = collections.Counter(sizes[p] for p in files.values())
  common = max(sorted(counts), key=counts.__getitem__)
  kept = {}
  for key, path in files.items():
    if sizes[path] == common:
      kept[key] = path
    else:
      (w, h), (cw, ch) = sizes[path], common
      notes.append((epath.Path(path).name, f"{what} is {w}x{h} but the "
                    f"release's {what}s are {cw}x{ch}; skipped (resize it "
                    "to that size or remove it)"))
  return kept


def _list_images(folder: epath.Path, notes):
  """{(subject, expression, view): path} of recognised images of one size."""
  out, sizes = {}, {}
  for path in sorted(folder.iterdir()):
    if path.suffix.lower() not in IMAGE_EXTS:
      notes.append((path.name, "not an image file (ignored)"))
      continue
    m = _IMAGE_RE.match(path.stem)
    if not m:
      notes.append((path.name, "unrecognised image name (ignored)"))
      continue
    size = _image_size(path)
    if isinstance(size, str):
      notes.append((path.name, f"{size}; skipped"))
      continue
    expression = int(m["pain"]) if m["pain"] else 0
    out[(m["subject"], expression, int(m["view"]))] = str(path)
    sizes[str(path)] = size
  return _keep_common_size(out, sizes, notes, "image")


def _list_annotations(folder: epath.Path, notes):
  """{annotation base: (subject, expression, au, pspi)} of valid JSONs."""
  out = {}
  for path in sorted(folder.glob("*.json")):
    m = _ANNOTATION_RE.match(path.stem)
    if not m:
      notes.append((path.name, "unrecognised annotation name (ignored)"))
      continue
    try:
      au, pspi = _parse_annotation(path)
    except ValueError as e:
      notes.append((path.name, f"{e}; its images are skipped"))
      continue
    out[m["base"]] = (m["subject"], int(m["pain"]), au, pspi)
  return out


def _list_heatmaps(folder: epath.Path, notes) -> dict[str, str]:
  """{annotation base: path} of readable heatmaps of one size."""
  out, sizes = {}, {}
  if folder.is_dir():
    for path in sorted(folder.iterdir()):
      m = _HEATMAP_RE.match(path.stem)
      if m and path.suffix.lower() in IMAGE_EXTS:
        size = _image_size(path)
        if isinstance(size, str):
          notes.append((path.name, f"{size}; skipped"))
          continue
        out[m["base"]] = str(path)
        sizes[str(path)] = size
  return _keep_common_size(out, sizes, notes, "heatmap")


def read_split_csv(path: epath.Path) -> dict[str, str]:
  """{annotation base: split name}; ManualDirError on a malformed file."""
  rows = list(csv.DictReader(path.read_text().splitlines()))
  if not rows or not {"annotation_base_name", "split"} <= set(rows[0]):
    raise ManualDirError(
        f"{path} must have the columns annotation_base_name,split "
        "(reference.md §A.6)"
    )
  bad = [r["split"] for r in rows if r["split"].strip() not in CSV_SPLITS]
  if bad:
    raise ManualDirError(
        f"{path}: split values must be 0 (train), 1 (val) or 2 (test); found "
        f"{sorted(set(bad))[:5]}"
    )
  return {
      r["annotation_base_name"].strip(): CSV_SPLITS[r["split"].strip()]
      for r in rows
  }


def _group_images(images):
  """{subject: {(expression, view): path}}."""
  out = {}
  for (subject, expression, view), path in images.items():
    out.setdefault(subject, {})[(expression, view)] = path
  return out


def _pain_items(subject, files, annotations, heatmaps, expect_heatmaps, notes):
  """PainItems of one subject; notes every file that cannot be labelled.

  Args:
    subject: subject name, e.g. flame_sample_0000.
    files: {(expression, view): image path} of the subject.
    annotations: {expression: (base, au, pspi)} of the subject.
    heatmaps: {annotation base: heatmap path} of all subjects.
    expect_heatmaps: whether heatmaps/ exists (then each item needs one).
    notes: list collecting (file name, reason) of skipped files.
  """
  items = []
  for k, (base, au, pspi) in sorted(annotations.items()):
    imgs = {v: p for (e, v), p in files.items() if e == k}
    if not imgs:
      notes.append((f"{base}_annotations.json", "no image for this annotation"))
      continue
    heatmap = heatmaps.get(base)
    if expect_heatmaps and heatmap is None:
      notes.extend((epath.Path(p).name, f"no heatmap {base}_heatmap.png in "
                    f"{HEATMAPS}/; skipped") for p in imgs.values())
      continue
    items.append(PainItem(base, k, au, pspi, imgs, heatmap))
  for (e, _), p in sorted(files.items()):
    if e > 0 and e not in annotations:
      notes.append((epath.Path(p).name, "no (valid) annotation; skipped"))
  return items


def _drop_views_without_neutral(subject, neutrals, items, notes):
  """Pain images need the neutral of their view; others are skipped."""
  kept = []
  for it in items:
    imgs = {}
    for v, p in it.images.items():
      if v in neutrals:
        imgs[v] = p
      else:
        notes.append((epath.Path(p).name, f"no neutral image of {subject} "
                      f"view {v}; skipped"))
    if imgs:
      kept.append(dataclasses.replace(it, images=imgs))
  return kept


def scan(manual_dir: epath.Path, split_csv_name: str) -> Scan:
  """Indexes the manual folder (see module docstring)."""
  root = find_root(manual_dir)
  notes: list[tuple[str, str]] = []
  images = _list_images(root / IMAGES, notes)
  annotations = _list_annotations(root / ANNOTATIONS, notes)
  if not images or not annotations:
    raise ManualDirError(
        f"{root / IMAGES} holds {len(images)} recognised images and "
        f"{root / ANNOTATIONS} {len(annotations)} valid annotations; both "
        "must be non-empty (names as in the dataset card)"
    )
  expect_heatmaps = (root / HEATMAPS).is_dir()
  heatmaps = _list_heatmaps(root / HEATMAPS, notes)
  by_subject = {}
  for base, (subject, k, au, pspi) in annotations.items():
    by_subject.setdefault(subject, {})[k] = (base, au, pspi)
  grouped = _group_images(images)
  for subject in sorted(set(by_subject) - set(grouped)):
    notes.append((subject, "annotations but no images; skipped"))
  units, mismatches = {}, []
  for subject, files in sorted(grouped.items()):
    m = _SUBJECT_INDEX_RE.search(subject)
    if not m or int(m[1]) in units:
      why = "duplicate identity index" if m else "subject name has no index"
      notes.extend((epath.Path(p).name, f"{why}; skipped") for p in files.values())
      continue
    neutrals = {v: p for (e, v), p in files.items() if e == 0}
    items = _pain_items(subject, files, by_subject.get(subject, {}),
                        heatmaps, expect_heatmaps, notes)
    items = _drop_views_without_neutral(subject, neutrals, items, notes)
    mismatches += [it.base for it in items
                   if float(records.pspi(list(it.au))) != it.pspi]
    units[int(m[1])] = IdentityUnit(int(m[1]), subject, neutrals,
                                    tuple(items), expect_heatmaps)
  csv_path = find_split_csv(manual_dir, root, split_csv_name)
  files = frozenset(m["base"] for p in (root / ANNOTATIONS).glob("*.json")
                    if (m := _ANNOTATION_RE.match(p.stem)))
  return Scan(units, notes, csv_path, mismatches, files)


def assign_csv_splits(scan_: Scan) -> dict[str, list[IdentityUnit]]:
  """Splits identities as the released CSV says (by their pain annotations).

  Identities without any CSV row are skipped with a note; an identity whose
  annotations fall in different splits raises ManualDirError (the released
  split is by identity, so such a file is not the released one).
  """
  table = read_split_csv(scan_.split_csv)
  out = {name: [] for name in CSV_SPLITS.values()}
  conflicts = []
  for _, unit in sorted(scan_.units.items()):
    found = {table[it.base] for it in unit.pain if it.base in table}
    if len(found) > 1:
      conflicts.append(f"{unit.subject}: {sorted(found)}")
    elif not found:
      scan_.notes.append((unit.subject, f"identity not in {scan_.split_csv.name}"
                          "; all its images skipped (add its rows to the CSV "
                          "or remove the CSV to split by identity hash)"))
    else:
      out[found.pop()].append(unit)
  unknown = sorted(set(table) - scan_.annotation_files)
  if unknown:
    scan_.notes.append((scan_.split_csv.name, f"{len(unknown)} rows name "
                        "annotations that are not in the folder, e.g. "
                        f"{unknown[:3]}; those rows are ignored"))
  if conflicts:
    raise ManualDirError(
        f"{scan_.split_csv} puts identities in several splits: "
        f"{conflicts[:5]}; the released split is by identity"
    )
  return out
