"""Reading MakeHuman `.target` files and re-indexing them onto a cropped mesh.

A `.target` file holds text lines `vertex_index dx dy dz` (optionally gzip
compressed, `#` comments allowed) in MakeHuman units (decimetres) and indexes
the full hm08 base mesh. The head crop duplicates seam vertices and drops most
of the body, so every target is re-indexed through `new_to_old`.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

from synth.head.model import Target

# MakeHuman stores geometry in decimetres; the head model works in metres.
MAKEHUMAN_UNIT_M = 0.1


def read_target_file(path: str) -> tuple[np.ndarray, np.ndarray]:
  """Parses one `.target` / `.target.gz` file.

  Args:
    path: file path.

  Returns:
    (indices (K,) int64, deltas (K, 3) float32 in the file's units).

  Raises:
    ValueError: a line does not have 4 numbers.
  """
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rt") as fh:
    lines = [
        ln for ln in fh.read().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
  # One split over the joined text is ~10x faster than np.loadtxt.
  flat = np.array(" ".join(lines).split(), dtype=np.float64)
  if flat.size != 4 * len(lines):
    raise ValueError(
        f"{path}: every line of a .target file must be "
        "'vertex_index dx dy dz'"
    )
  table = flat.reshape(-1, 4)
  return table[:, 0].astype(np.int64), table[:, 1:].astype(np.float32)


class Reindexer:
  """Maps targets on the full base mesh onto the cropped, seam-split mesh."""

  def __init__(self, new_to_old: np.ndarray, num_old: int):
    """Builds the map.

    Args:
      new_to_old: (V_new,) index of the base-mesh vertex each new vertex
        copies (seam duplicates share one old index).
      num_old: number of base-mesh vertices.
    """
    self._new_to_old = new_to_old
    self._num_old = num_old

  def __call__(self, old_idx: np.ndarray, deltas: np.ndarray,
               scale: float = MAKEHUMAN_UNIT_M) -> Target:
    """Re-indexes one target, keeping only vertices of the crop.

    Args:
      old_idx: (K,) base-mesh indices.
      deltas: (K, 3) displacements in file units.
      scale: multiplies deltas (decimetres -> metres by default).

    Returns:
      The Target on the new mesh (zero-length if it misses the crop).
    """
    lookup = np.full(self._num_old, -1, np.int64)
    valid = (old_idx >= 0) & (old_idx < self._num_old)
    lookup[old_idx[valid]] = np.nonzero(valid)[0]
    pos = lookup[self._new_to_old]
    new_idx = np.nonzero(pos >= 0)[0]
    moved = deltas[pos[new_idx]] * np.float32(scale)
    keep = np.any(moved != 0.0, axis=1)
    return Target(new_idx[keep].astype(np.int32),
                  moved[keep].astype(np.float32))

  def load(self, path: str) -> Target:
    """Reads `path` and re-indexes it."""
    return self(*read_target_file(path))


def target_name(path: str) -> str:
  """File name without `.target` / `.target.gz`."""
  base = os.path.basename(path)
  for ext in (".target.gz", ".target"):
    if base.endswith(ext):
      return base[: -len(ext)]
  return base
