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

from collections.abc import Mapping, Sequence

import numpy as np

from jaxpain.data import sources
from tfds_3dpain.unbc_mcmaster import folds as folds_lib
from tfds_3dpain.unbc_mcmaster import unbc

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


Policy = str | Mapping[str, Sequence[int]]


def policy_references(policy: Policy, identity, pspi, starts) -> np.ndarray:
  """Reference mask of one policy, or of {policy: subjects} per subject.

  A mapping lets one source serve subjects under different rules (test
  subjects label-free, training subjects by PSPI 0); references never cross
  subjects, so the rules cannot leak into each other.
  """
  if isinstance(policy, str):
    return reference_mask(policy, pspi, starts)
  out = np.zeros(len(np.asarray(pspi)), bool)
  for name, subjects in policy.items():
    rows = np.isin(identity, list(subjects))
    out[rows] = reference_mask(name, pspi, starts)[rows]
  return out


def fallback_counts(index: sources.SplitIndex) -> dict[str, object]:
  """Examples (and subjects) with no reference of their own subject."""
  has = set(np.unique(index.identity[index.reference]).tolist())
  ids = index.identity[index.example]
  lacking = sorted(set(np.unique(ids).tolist()) - has)
  return {"subjects_without_reference": lacking,
          "frames_using_self_as_reference": int(np.isin(ids, lacking).sum())}


def _resize(img: np.ndarray, size: int | None) -> np.ndarray:
  if size is None or img.shape[:2] == (size, size):
    return img
  from PIL import Image  # noqa: PLC0415

  return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


class _Indexed:
  """record_index() from labels: examples by subject, references by policy."""

  identity: np.ndarray
  _example: np.ndarray
  _refs: np.ndarray

  def _set_index(self, identity, pspi, starts, policy: Policy, subjects):
    self.identity = np.asarray(identity, np.int64)
    self._example = (np.ones(len(self.identity), bool) if subjects is None
                     else np.isin(self.identity, list(subjects)))
    self._refs = policy_references(policy, self.identity, pspi, starts)

  def record_index(self) -> sources.SplitIndex:
    n = len(self.identity)
    return sources.SplitIndex(
        identity=self.identity.copy(), view=np.zeros(n, np.int64),
        example=self._example.copy(), reference=self._refs.copy())


class TableSource(_Indexed):
  """Random-access records over a `UnbcData` (picklable for grain workers).

  Args:
    data: the frames of this split.
    policy: reference policy, or {policy: subjects} (module docstring).
    image_size: resize every image to this square side (batches need one
      shape; archive face crops differ in size). None keeps stored sizes.
    subjects: only these subjects' frames are examples (default: all).
  """

  def __init__(self, data: unbc.UnbcData, policy: Policy,
               image_size: int | None = None, subjects=None):
    self.data, self.policy, self.image_size = data, policy, image_size
    self._set_index(data.subject, data.pspi, data.sequence_starts(), policy,
                    subjects)

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

  def key(self, i: int) -> str:
    return str(self.data.key[i])

  def image(self, i: int) -> np.ndarray:
    return self.data.image(int(i))


class TfdsSource(_Indexed):
  """A prepared `unbc_mcmaster` split with UNBC reference rules.

  Labels for the index are read once, with image decoding skipped.
  """

  def __init__(self, name: str, split: str, policy: Policy,
               data_dir: str | None = None, subjects=None):
    import tensorflow_datasets as tfds  # noqa: PLC0415

    import tfds_3dpain  # noqa: F401, PLC0415 (registers unbc_mcmaster)

    self.name, self.split, self.policy = name, split, policy
    self._src = tfds.data_source(name, split=split, data_dir=data_dir)
    labels = tfds.data_source(
        name, split=split, data_dir=data_dir,
        decoders={"image": tfds.decode.SkipDecoding()})
    rows = []
    for start in range(0, len(labels), 512):
      rows += list(labels.__getitems__(
          list(range(start, min(len(labels), start + 512)))))
    self.pspi = np.array([r["pspi"] for r in rows], np.float32)
    self._keys = [f"{r['subject_name'].decode()}/{r['sequence'].decode()}/"
                  f"{int(r['frame']):06d}" for r in rows]
    self._set_index([r["identity"] for r in rows], self.pspi,
                    [r["is_sequence_start"] for r in rows], policy, subjects)

  def __len__(self) -> int:
    return len(self._src)

  def __getitem__(self, i: int) -> dict:
    return self._src[int(i)]

  def key(self, i: int) -> str:
    return self._keys[int(i)]

  def image(self, i: int) -> np.ndarray:
    return np.asarray(self._src[int(i)]["image"])


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
