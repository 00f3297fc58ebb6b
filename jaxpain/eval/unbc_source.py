"""UNBC as a record source of the trainer's grain pipeline, with references.

`jaxpain.data` reads any random-access source whose records carry `image`,
`au`, `pspi` and `identity`, and whose `record_index()` says which records
are examples and which may serve as neutral references (`SplitIndex`).
UNBC differs from 3DPain in two ways this module encodes:

- every frame is an example (PSPI 0 frames are scored too);
- which frames may be references is a PROTOCOL choice (`REFERENCE_POLICIES`):
  * "sequence_start" (default at test time): the first frame of each of the
    subject's sequences, chosen without labels (reference.md §E.12);
  * "pspi0": frames whose ground-truth PSPI is 0. Legitimate on TRAINING
    subjects (the released training rule); on test subjects it reads test
    labels, which is what the released evaluation does ("clinician-provided
    baseline"), so it is only used there when asked for explicitly;
  * "none": no reference (the model's no-reference path is not used; the
    pipeline then falls back to the frame itself).
  A subject without any reference frame falls back to the frame itself (the
  released rule); `fallback_counts` reports how often.

Sources: `TableSource` over an in-memory `UnbcData` (reads the user's
folder directly, no TFDS preparation), and `TfdsSource` over a prepared
`unbc_mcmaster` split. Split strings name folds: "fold0", "fold1+fold2".
"""

from __future__ import annotations

import numpy as np

from jaxpain.data import sources
from jaxpain.eval import folds as folds_lib
from jaxpain.eval import unbc

REFERENCE_POLICIES = ("sequence_start", "pspi0", "none")


def reference_mask(policy: str, pspi, sequence_start) -> np.ndarray:
  """(N,) bool: records a policy allows as references."""
  if policy == "sequence_start":
    return np.asarray(sequence_start, bool).copy()
  if policy == "pspi0":
    return np.asarray(pspi) == 0
  if policy == "none":
    return np.zeros(len(np.asarray(pspi)), bool)
  raise ValueError(f"reference policy {policy!r} not in {REFERENCE_POLICIES}")


def fallback_counts(index: sources.SplitIndex) -> dict[str, object]:
  """Examples (and subjects) with no reference of their own subject."""
  has = set(np.unique(index.identity[index.reference]).tolist())
  lacking = sorted(set(np.unique(index.identity).tolist()) - has)
  frames = int(np.isin(index.identity[index.example], lacking).sum())
  return {"subjects_without_reference": lacking,
          "frames_using_self_as_reference": frames}


def _resize(img: np.ndarray, size: int | None) -> np.ndarray:
  if size is None or img.shape[:2] == (size, size):
    return img
  from PIL import Image  # noqa: PLC0415

  return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


class TableSource:
  """Random-access records over a `UnbcData` (picklable for grain workers).

  Args:
    data: the frames of this split.
    policy: reference policy (see module docstring).
    image_size: resize every image to this square side (batches need one
      shape; archive face crops differ in size). None keeps stored sizes.
  """

  def __init__(self, data: unbc.UnbcData, policy: str,
               image_size: int | None = None):
    self.data, self.policy, self.image_size = data, policy, image_size
    self._refs = reference_mask(policy, data.pspi, data.sequence_starts())

  @classmethod
  def mixed(cls, data: unbc.UnbcData, policies: dict[str, list[int]],
            image_size: int | None = None) -> TableSource:
    """One source whose subjects follow different reference policies.

    `policies` maps a policy to its subjects (e.g. test subjects
    "sequence_start", training subjects "pspi0"); references never cross
    subjects, so one prediction pass serves both groups.
    """
    src = cls(data, "none", image_size)
    starts = data.sequence_starts()
    for policy, subjects in policies.items():
      rows = np.isin(data.subject, list(subjects))
      src._refs[rows] = reference_mask(policy, data.pspi, starts)[rows]
    src.policy = "mixed"
    return src

  def __len__(self) -> int:
    return len(self.data)

  def __getitem__(self, i: int) -> dict:
    d = self.data
    return {
        "image": _resize(d.image(int(i)), self.image_size),
        "au": d.au[i], "pspi": np.float32(d.pspi[i]),
        "identity": np.int32(d.subject[i]), "view": np.int32(0),
        "is_neutral": bool(d.pspi[i] == 0),
    }

  def record_index(self) -> sources.SplitIndex:
    n = len(self.data)
    return sources.SplitIndex(
        identity=self.data.subject.astype(np.int64),
        view=np.zeros(n, np.int64), example=np.ones(n, bool),
        reference=self._refs.copy())


class TfdsSource:
  """A prepared `unbc_mcmaster` split with UNBC reference rules.

  Labels for the index are read once with image decoding skipped.
  """

  def __init__(self, name: str, split: str, policy: str,
               data_dir: str | None = None):
    import tensorflow_datasets as tfds  # noqa: PLC0415

    import tfds_3dpain  # noqa: F401, PLC0415 (registers unbc_mcmaster)

    self._src = tfds.data_source(name, split=split, data_dir=data_dir)
    labels = tfds.data_source(
        name, split=split, data_dir=data_dir,
        decoders={"image": tfds.decode.SkipDecoding()})
    rows = [labels[i] for i in range(len(labels))]
    self._identity = np.array([r["identity"] for r in rows], np.int64)
    pspi = np.array([r["pspi"] for r in rows], np.float32)
    starts = np.array([r["is_sequence_start"] for r in rows], bool)
    self.pspi = pspi
    self._refs = reference_mask(policy, pspi, starts)

  def __len__(self) -> int:
    return len(self._src)

  def __getitem__(self, i: int) -> dict:
    return self._src[int(i)]

  def record_index(self) -> sources.SplitIndex:
    n = len(self._identity)
    return sources.SplitIndex(
        identity=self._identity.copy(), view=np.zeros(n, np.int64),
        example=np.ones(n, bool), reference=self._refs.copy())


def parse_fold_split(split: str, k: int) -> list[int]:
  """Fold indices of "fold0+fold3"; errors name the valid splits."""
  out = []
  for part in split.split("+"):
    part = part.strip()
    if not (part.startswith("fold") and part[4:].isdigit()
            and int(part[4:]) < k):
      raise sources.DataError(
          f"UNBC split {split!r}: {part!r} is not one of "
          f"{[f'fold{i}' for i in range(k)]} (join folds with '+')")
    out.append(int(part[4:]))
  return out


def split_table(data: unbc.UnbcData, folds: list[folds_lib.Fold],
                split: str) -> unbc.UnbcData:
  """The frames of the test subjects of the folds named in `split`."""
  subjects = [s for i in parse_fold_split(split, len(folds))
              for s in folds[i].test_subjects]
  return data.of_subjects(subjects)


def register_table_source(name: str, root: str, policies: dict[str, str],
                          image_size: int | None = None,
                          data: unbc.UnbcData | None = None) -> list:
  """Register `name` with `jaxpain.data.register_source`, reading `root`.

  The trainer then opens `config.data.name = name` with fold splits. The
  policy for a split is `policies[split]`, else `policies["default"]`, so
  training splits can use "pspi0" while the test split uses
  "sequence_start".

  Returns:
    The folds used.
  """
  data = unbc.load(root) if data is None else data
  fold_list, _ = folds_lib.for_data(data, root)

  def factory(split, data_dir=None):
    del data_dir  # the table is already loaded from `root`
    policy = policies.get(split, policies.get("default", "sequence_start"))
    return TableSource(split_table(data, fold_list, split), policy, image_size)

  sources.register_source(name, factory)
  return fold_list
