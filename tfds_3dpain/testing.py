"""A fake 3D-Pain release, for tests and for trying the `official` import.

`write_official_fixture(root)` writes a few identities in the released layout
(reference.md §A.5/§A.6; the builder's MANUAL_DOWNLOAD_INSTRUCTIONS): tiny
JPEG images, JSON annotations, single-channel heatmaps and the split CSV.
Labels are drawn from a seeded generator, so the same call always writes the
same bytes, and `FixtureInfo` says what a correct import must produce.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from etils import epath
from PIL import Image

from synth import records

SUBJECT = "flame_sample_{:04d}"
# Identity -> released split value (0 train, 1 val, 2 test).
DEFAULT_CSV_SPLITS = (0, 0, 1, 2)


@dataclasses.dataclass(frozen=True)
class FixtureInfo:
  """What was written (all paths are inside `root`)."""

  root: epath.Path
  images_dir: epath.Path
  annotations_dir: epath.Path
  heatmaps_dir: epath.Path | None
  split_csv: epath.Path | None
  # {(identity, expression): (AUs in AU_NAMES order, PSPI)} for pain.
  labels: dict[tuple[int, int], tuple[tuple[float, ...], float]]
  # {split name: number of examples (images) a correct import yields}.
  split_sizes: dict[str, int]
  num_views: int


def image_name(identity: int, expression: int, view: int) -> str:
  """Released image file name of (identity, expression, view)."""
  kind = "neutral" if expression == 0 else f"pain_{expression}"
  return f"{SUBJECT.format(identity)}_{kind}_textured_view_{view:03d}_inpainted.jpg"


def _jpeg(rng, size: int, path: epath.Path) -> None:
  pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
  Image.fromarray(pixels, "RGB").save(str(path), format="JPEG", quality=90)


def _labels(rng) -> tuple[tuple[float, ...], float]:
  au = [float(rng.integers(0, 6)) for _ in records.AU_NAMES[:-1]]
  au.append(float(rng.integers(0, 2)))
  return tuple(au), float(records.pspi(np.array(au)))


def write_official_fixture(
    root,
    *,
    csv_splits=DEFAULT_CSV_SPLITS,
    size: int = 16,
    num_views: int = 3,
    heatmaps: bool = True,
    split_csv: bool = True,
    seed: int = 0,
) -> FixtureInfo:
  """Writes a fake release with one identity per entry of csv_splits.

  Args:
    root: the manual folder to create (`root/pain_faces/...`).
    csv_splits: released split value (0/1/2) of each identity.
    size: image side in pixels.
    num_views: views per expression.
    heatmaps: also write `heatmaps/`.
    split_csv: also write `uniform_data_70_20_10_split.csv` in root.
    seed: seed of images and labels.

  Returns:
    FixtureInfo describing the files and the expected import.
  """
  root = epath.Path(root)
  base = root / "pain_faces"
  dirs = {n: base / n for n in ("meshes_inpainted", "annotations", "heatmaps")}
  for name, path in dirs.items():
    if name != "heatmaps" or heatmaps:
      path.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  labels, rows = {}, ["annotation_base_name,split"]
  for identity, split in enumerate(csv_splits):
    for expression in range(1 + records.NUM_PAIN_EXPRESSIONS):
      for view in range(num_views):
        _jpeg(rng, size, dirs["meshes_inpainted"] /
              image_name(identity, expression, view))
      if expression == 0:
        continue
      stem = f"{SUBJECT.format(identity)}_pain_{expression}"
      au, pspi = _labels(rng)
      labels[(identity, expression)] = (au, pspi)
      annotation = dict(zip(records.AU_NAMES, au, strict=True), PSPI=pspi)
      (dirs["annotations"] / f"{stem}_annotations.json").write_text(
          json.dumps(annotation)
      )
      rows.append(f"{stem},{split}")
      if heatmaps:
        heat = rng.integers(0, 256, (size, size), dtype=np.uint8)
        Image.fromarray(heat, "L").save(
            str(dirs["heatmaps"] / f"{stem}_heatmap.png"), format="PNG"
        )
  csv_path = root / "uniform_data_70_20_10_split.csv" if split_csv else None
  if csv_path is not None:
    csv_path.write_text("\n".join(rows) + "\n")
  per_identity = (1 + records.NUM_PAIN_EXPRESSIONS) * num_views
  names = ("train", "validation", "test")
  sizes = {n: per_identity * list(csv_splits).count(i)
           for i, n in enumerate(names)}
  return FixtureInfo(
      root=root,
      images_dir=dirs["meshes_inpainted"],
      annotations_dir=dirs["annotations"],
      heatmaps_dir=dirs["heatmaps"] if heatmaps else None,
      split_csv=csv_path,
      labels=labels,
      split_sizes=sizes,
      num_views=num_views,
  )
