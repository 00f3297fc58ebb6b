"""The UNBC-McMaster frame table that every reader returns.

One row per frame (subject, sequence, frame number, the six PSPI AUs, PSPI,
a unique key) plus a lazy image accessor, so folds, the `unbc_mcmaster`
builder and the cross-validation runner never care which on-disk layout
(`unbc` for the released HDF5 files, `unbc_archive` for the original
folder tree) the user had. It imports neither reader: both import it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from synth.cli_errors import UserError

AU_NUMBERS: tuple[int, ...] = (4, 6, 7, 9, 10, 43)
AU_KEYS: tuple[str, ...] = tuple(f"label_AU_{n}" for n in AU_NUMBERS)


class UnbcFormatError(UserError):
  """The user's UNBC copy is missing something or is laid out wrongly."""


@dataclasses.dataclass
class UnbcData:
  """Frame table of UNBC-McMaster (or a subset of it).

  Attributes:
    subject: (N,) int subject id (the number before "-" in "042-ll042").
    subject_name: (N,) str, e.g. "042-ll042".
    sequence: (N,) str sequence name; "" when the layout has none (hdf5).
    frame: (N,) int frame number within the sequence (hdf5: global index);
      frames of a sequence are in increasing `frame` order.
    au: (N, 6) float32 AU intensities in `records.AU_NAMES` order.
    pspi: (N,) float32 PSPI, 0..16.
    key: (N,) str unique frame key.
    images: callable i -> (H, W, 3) uint8 for row i of the *source* table.
    rows: (N,) int row of each frame in the source table (for `images`).
    stats: counts of every label repair or drop done while reading.
    layout: "hdf5" or "archive".
  """

  subject: np.ndarray
  subject_name: np.ndarray
  sequence: np.ndarray
  frame: np.ndarray
  au: np.ndarray
  pspi: np.ndarray
  key: np.ndarray
  images: object
  rows: np.ndarray
  stats: dict
  layout: str

  def __len__(self) -> int:
    return int(self.pspi.shape[0])

  def image(self, i: int) -> np.ndarray:
    """Decoded RGB uint8 image of frame i of this table."""
    return self.images(int(self.rows[i]))

  def select(self, idx) -> UnbcData:
    """The frames at integer positions or boolean mask `idx`."""
    idx = np.asarray(idx)
    if idx.dtype == bool:
      idx = np.nonzero(idx)[0]
    cols = {f: getattr(self, f)[idx] for f in _ROW_FIELDS}
    return dataclasses.replace(self, **cols)

  def subjects(self) -> np.ndarray:
    """Sorted unique subject ids."""
    return np.unique(self.subject)

  def of_subjects(self, subjects: Sequence[int]) -> UnbcData:
    """Frames of the given subjects, in table order."""
    return self.select(np.isin(self.subject, np.asarray(list(subjects))))

  def sequence_starts(self) -> np.ndarray:
    """(N,) bool: the first frame of each (subject, sequence).

    Chosen without looking at any label, so it can pick test-time neutral
    references honestly. In the hdf5 layout, which has no sequences, it is
    the lowest-index frame of each subject.
    """
    grp = np.char.add(self.subject.astype(str), np.char.add("/", self.sequence))
    first = np.ones(len(self), dtype=bool)
    if len(self):
      order = np.lexsort((self.frame, grp))
      first_sorted = np.r_[True, grp[order][1:] != grp[order][:-1]]
      first = np.zeros(len(self), dtype=bool)
      first[order[first_sorted]] = True
    return first


_ROW_FIELDS = ("subject", "subject_name", "sequence", "frame", "au", "pspi",
               "key", "rows")


def subject_id(name) -> int:
  """Subject id of a UNBC subject name: int of the text before "-"."""
  s = name.decode() if isinstance(name, bytes) else str(name)
  head = s.split("-")[0].strip()
  if not head.isdigit():
    raise UnbcFormatError(
        f"subject name {s!r} does not start with a number followed by '-' "
        "(expected e.g. '042-ll042')"
    )
  return int(head)


def make_table(subject_name, sequence, frame, au, pspi, key, images, rows,
               stats, layout) -> UnbcData:
  """Build a `UnbcData`, deriving subject ids and sorting frames.

  Frames are ordered by (subject, sequence, frame) so that "the first frame
  of a sequence" and "the lowest-index frame of a subject" are well defined
  whatever order the files listed them in.
  """
  subject_name = np.asarray(subject_name).astype(str)
  subject = np.array([subject_id(n) for n in subject_name], dtype=np.int64)
  sequence = np.asarray(sequence).astype(str)
  frame = np.asarray(frame, dtype=np.int64)
  order = np.lexsort((frame, sequence, subject))
  au = np.asarray(au, dtype=np.float32).reshape(-1, len(AU_NUMBERS))
  return UnbcData(
      subject=subject[order], subject_name=subject_name[order],
      sequence=sequence[order], frame=frame[order], au=au[order],
      pspi=np.asarray(pspi, dtype=np.float32)[order],
      key=np.asarray(key).astype(str)[order], images=images,
      rows=np.asarray(rows, dtype=np.int64)[order], stats=stats,
      layout=layout)
