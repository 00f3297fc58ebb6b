"""UNBC-McMaster readers: the released HDF5 files and the frame table.

UNBC-McMaster is licensed, so nothing here downloads it; users point us at
their copy, in either of two layouts:

- **hdf5**: the three files the released code expects (reference.md §C):
  `frames_unbc*.hdf5` (`image` (N, H, W, 3) uint8 pre-cropped faces, `index`),
  `annotations_unbc*.hdf5` (`index`, `subject_name`, `label_AU_{4,6,7,9,10,43}`,
  `label_pspi`) and optionally the fold file `UNBC_CVFolds*.hdf5`;
- **archive**: the folder tree of the original distribution, read by
  `unbc_archive`.

Both give a `UnbcData`: one row per frame with subject, sequence, frame
number, the six PSPI AUs, PSPI and a lazy image accessor, so folds, the TFDS
builder and the runner never care which layout the user had.

Label handling (documented, counted in `UnbcData.stats`):
- an AU stored as a per-frame array (several coders / sub-frames) is reduced
  with nanmax, then NaN -> 0 (the released behaviour); AU43 is binarised
  (> 0 -> 1) because PSPI counts eye closure as present/absent;
- a NaN PSPI is never silently made 0: `nan_pspi='drop'` (default) removes
  the frame, `'zero'` copies the released code, `'error'` stops;
- annotation rows whose `index` has no frame are dropped (released code).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

import h5py
import numpy as np

from synth import records
from tfds_3dpain.unbc_mcmaster import unbc_archive

# The table types, re-exported: `unbc` is the readers' public face.
from tfds_3dpain.unbc_mcmaster.table import (  # noqa: F401
  AU_KEYS,
  AU_NUMBERS,
  UnbcData,
  UnbcFormatError,
  make_table,
  subject_id,
)

FRAMES_GLOB = "frames_unbc*.h*5"
ANNOTATIONS_GLOB = "annotations_unbc*.h*5"
FOLDS_GLOB = "UNBC_CVFolds*.h*5"
# The released file names, used when we write the layout ourselves.
FRAMES_FILE = "frames_unbc_2020-09-21-05-42-04.hdf5"
ANNOTATIONS_FILE = "annotations_unbc_2020-10-13-22-55-04.hdf5"
FOLDS_FILE = "UNBC_CVFolds_2019-05-16-15-16-36.hdf5"
NAN_PSPI_POLICIES = ("drop", "zero", "error")


# ----------------------------------------------------------------------------
# Layout detection
# ----------------------------------------------------------------------------


def find_hdf5_files(root: str) -> dict[str, str | None]:
  """Paths of the released HDF5 files under `root` (None where absent)."""
  out = {}
  for name, pattern in (("frames", FRAMES_GLOB),
                        ("annotations", ANNOTATIONS_GLOB),
                        ("folds", FOLDS_GLOB)):
    hits = sorted(glob.glob(os.path.join(root, pattern)))
    if len(hits) > 1:
      raise UnbcFormatError(
          f"{len(hits)} files match {pattern} in {root}: {hits}; keep one")
    out[name] = hits[0] if hits else None
  return out


def detect_layout(root: str) -> str:
  """'hdf5' or 'archive', or an error saying what either layout needs."""
  if not os.path.isdir(root):
    raise UnbcFormatError(f"UNBC folder {root!r} does not exist")
  files = find_hdf5_files(root)
  if files["frames"] and files["annotations"]:
    return "hdf5"
  if unbc_archive.find_archive_root(root) is not None:
    return "archive"
  raise UnbcFormatError(
      f"{root} holds neither UNBC layout. Expected either\n"
      f"  hdf5:    {FRAMES_GLOB} and {ANNOTATIONS_GLOB} "
      f"(optionally {FOLDS_GLOB}), found frames={files['frames']}, "
      f"annotations={files['annotations']}; or\n"
      "  archive: Images/<subject>/<sequence>/<frame>.png and "
      "Frame_Labels/PSPI/<subject>/<sequence>/<frame>_facs.txt "
      "(Frame_Labels/FACS/... for AUs), possibly one folder down."
  )


def load(root: str, nan_pspi: str = "drop", crop: str = "auto") -> UnbcData:
  """Read UNBC from `root` in whichever layout it is.

  Args:
    root: folder with the released HDF5 files or the original archive.
    nan_pspi: what to do with NaN PSPI labels, one of NAN_PSPI_POLICIES.
    crop: archive only: "auto" crops faces with the AAM landmarks when they
      exist, "landmarks" requires them, "none" keeps the full frame.

  Returns:
    The frame table.
  """
  if detect_layout(root) == "hdf5":
    files = find_hdf5_files(root)
    return read_hdf5(files["frames"], files["annotations"], nan_pspi)
  return unbc_archive.read_archive(root, crop=crop)


# ----------------------------------------------------------------------------
# HDF5 layout
# ----------------------------------------------------------------------------


class _HdfImages:
  """Row -> image from the frames file, reopened per process (fork-safe)."""

  def __init__(self, path: str):
    self.path = path
    self._file = None
    self._pid = None

  def __call__(self, row: int) -> np.ndarray:
    if self._file is None or self._pid != os.getpid():
      self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
    img = np.asarray(self._file["image"][row])
    if img.ndim == 2:
      img = np.repeat(img[..., None], 3, axis=-1)
    return img.astype(np.uint8)

  def __getstate__(self):
    return {"path": self.path, "_file": None, "_pid": None}


def _require(f: h5py.File, keys: Sequence[str], what: str) -> None:
  missing = [k for k in keys if k not in f]
  if missing:
    raise UnbcFormatError(
        f"{what} {f.filename} lacks key(s) {missing}; it has "
        f"{sorted(f.keys())}. The released layout needs {list(keys)}."
    )


def _reduce_au(ds: h5py.Dataset, keep: np.ndarray) -> tuple[np.ndarray, int]:
  """Per-frame AU value: nanmax over per-frame arrays; NaN -> 0 (counted)."""
  raw = ds[()]
  if raw.dtype == object:  # variable-length per-frame arrays
    vals = np.array([
        np.nanmax(v) if np.size(v) and np.isfinite(v).any() else np.nan
        for v in raw[keep]
    ], dtype=np.float64)
  else:
    raw = np.asarray(raw, dtype=np.float64)[keep]
    if raw.ndim > 1:
      flat = raw.reshape(raw.shape[0], -1)
      has = np.isfinite(flat).any(axis=1)
      vals = np.full(raw.shape[0], np.nan)
      vals[has] = np.nanmax(flat[has], axis=1)
    else:
      vals = raw
  nan = ~np.isfinite(vals)
  return np.where(nan, 0.0, vals), int(nan.sum())


def _nan_pspi(pspi: np.ndarray, policy: str, where: str):
  """Apply the NaN-PSPI policy; returns (pspi, keep mask, count)."""
  if policy not in NAN_PSPI_POLICIES:
    raise ValueError(f"nan_pspi must be one of {NAN_PSPI_POLICIES}")
  nan = ~np.isfinite(pspi)
  n = int(nan.sum())
  if n and policy == "error":
    raise UnbcFormatError(
        f"{n} frame(s) of {where} have a NaN PSPI label; pass "
        "nan_pspi='drop' to leave them out or 'zero' to copy the released "
        "code (NaN -> 0)")
  if policy == "zero":
    return np.where(nan, 0.0, pspi), np.ones_like(nan), n
  return pspi, ~nan, n


def read_hdf5(frames_path: str, annotations_path: str,
              nan_pspi: str = "drop") -> UnbcData:
  """Read the released frames + annotations HDF5 pair.

  Annotation rows are joined to image rows through `index` (which equals the
  row position in the released files); rows pointing at no frame are
  dropped and counted, as the released loader does.
  """
  with h5py.File(frames_path, "r") as ff:
    _require(ff, ("image",), "frames file")
    n_img = int(ff["image"].shape[0])
    img_index = ff["index"][()] if "index" in ff else np.arange(n_img)
  with h5py.File(annotations_path, "r") as af:
    _require(af, ("index", "subject_name", "label_pspi") + AU_KEYS,
             "annotations file")
    ann_index = np.asarray(af["index"][()]).astype(np.int64).reshape(-1)
    pos = {int(v): i for i, v in enumerate(np.asarray(img_index).reshape(-1))}
    rows = np.array([pos.get(int(v), -1) for v in ann_index], dtype=np.int64)
    keep = rows >= 0
    aus, nan_au = [], {}
    for name, key in zip(records.AU_NAMES, AU_KEYS, strict=True):
      vals, n = _reduce_au(af[key], keep)
      aus.append(vals)
      nan_au[name] = n
    names = af["subject_name"][()][keep]
    pspi = np.asarray(af["label_pspi"][()], dtype=np.float64)
    if pspi.ndim > 1:
      pspi = np.nanmax(pspi.reshape(pspi.shape[0], -1), axis=1)
    pspi = pspi[keep]
  au = np.stack(aus, axis=1)
  au[:, 5] = (au[:, 5] > 0).astype(np.float64)
  pspi, ok, n_nan = _nan_pspi(pspi, nan_pspi, annotations_path)
  rows, kept_index = rows[keep][ok], ann_index[keep][ok]
  stats = {"dropped_no_frame": int((~keep).sum()), "nan_au": nan_au,
           "nan_pspi": n_nan, "nan_pspi_policy": nan_pspi,
           "dropped_nan_pspi": int((~ok).sum())}
  names = np.array([n.decode() if isinstance(n, bytes) else str(n)
                    for n in names[ok]])
  keys = np.array([f"{n}/{i:06d}" for n, i in zip(names, kept_index,
                                                  strict=True)])
  return make_table(names, np.full(len(names), ""), kept_index, au[ok],
                    pspi[ok], keys, _HdfImages(frames_path), rows, stats,
                    "hdf5")


def _atomic_h5(path: str, fill) -> None:
  """Write an HDF5 file under a temporary name, then rename it into place."""
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with h5py.File(tmp, "w") as f:
      fill(f)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_hdf5(data: UnbcData, out_dir: str, size: int | None = None) -> dict:
  """Write `data` in the released frames + annotations layout.

  Converts an archive copy into the files the released code (and our HDF5
  reader) expect. Images must share one shape unless `size` resizes them.

  Returns:
    {"frames": path, "annotations": path}.
  """
  from PIL import Image  # noqa: PLC0415

  os.makedirs(out_dir, exist_ok=True)
  imgs = []
  for i in range(len(data)):
    img = data.image(i)
    if size is not None:
      img = np.asarray(Image.fromarray(img).resize((size, size),
                                                   Image.BILINEAR))
    imgs.append(img)
  shapes = {im.shape for im in imgs}
  if len(shapes) > 1:
    raise ValueError(f"images have several shapes {sorted(shapes)}; pass size")
  index = np.arange(len(data), dtype=np.int64)
  paths = {"frames": os.path.join(out_dir, FRAMES_FILE),
           "annotations": os.path.join(out_dir, ANNOTATIONS_FILE)}

  def frames(f):
    f["image"] = np.stack(imgs).astype(np.uint8)
    f["index"] = index

  def annotations(f):
    f["index"] = index
    f["subject_name"] = np.array([s.encode() for s in data.subject_name])
    for j, key in enumerate(AU_KEYS):
      f[key] = data.au[:, j].astype(np.float64)
    f["label_pspi"] = data.pspi.astype(np.float64)

  _atomic_h5(paths["frames"], frames)
  _atomic_h5(paths["annotations"], annotations)
  return paths
