"""Identity-level train / validation / test splits (70 / 20 / 10).

Every image of an identity lands in the same split, so no face is seen in
training and evaluation. The assignment is deterministic: each identity gets
a uniform number from a salted BLAKE2 hash of its index, and identities are
assigned by thresholds on it (< 0.7 train, < 0.9 validation, else test).

Thresholds, not ranks, make the split of identity i independent of how many
identities a config has, so `small` (the first 100 identities) is a subset of
`full` split for split: a model trained on `small/train` has never seen a
`full/test` face. With few identities, thresholds can leave a split empty; a
config with fewer than `MIN_FOR_THRESHOLDS` identities (or any set where a
threshold split comes out empty) is therefore split by rank of the same hash:
exact counts, every split non-empty.
"""

from __future__ import annotations

import hashlib

import numpy as np

SPLITS = ("train", "validation", "test")
FRACTIONS = (0.7, 0.2, 0.1)
MIN_FOR_THRESHOLDS = 30


def identity_uniform(index: int, salt: str) -> float:
  """A number in [0, 1) fixed by (salt, index)."""
  digest = hashlib.blake2b(f"{salt}:{index}".encode(), digest_size=8).digest()
  return int.from_bytes(digest, "big") / 2.0**64


def split_counts(num_identities: int) -> tuple[int, int, int]:
  """Exact 70/20/10 counts with every split non-empty (needs >= 3)."""
  if num_identities < len(SPLITS):
    raise ValueError(
        f"need at least {len(SPLITS)} identities for a train/validation/test "
        f"split, got {num_identities}"
    )
  n_val = max(1, round(FRACTIONS[1] * num_identities))
  n_test = max(1, round(FRACTIONS[2] * num_identities))
  return num_identities - n_val - n_test, n_val, n_test


def assign(indices: list[int], salt: str) -> dict[str, list[int]]:
  """Splits identity indices into train / validation / test.

  Args:
    indices: identity indices (any order, no duplicates).
    salt: hash salt; fixed per dataset version.

  Returns:
    {split name: sorted identity indices}; each split non-empty when
    len(indices) >= 3.
  """
  u = {i: identity_uniform(i, salt) for i in indices}
  out = {name: [] for name in SPLITS}
  if len(indices) >= MIN_FOR_THRESHOLDS:
    edges = np.cumsum(FRACTIONS)
    for i, value in u.items():
      out[SPLITS[int(np.searchsorted(edges, value, side="right"))]].append(i)
  if not all(out.values()):  # Few identities (or an unlucky set): by rank.
    ranked = sorted(indices, key=lambda i: (u[i], i))
    n_train, n_val, _ = split_counts(len(indices))
    out["train"] = ranked[:n_train]
    out["validation"] = ranked[n_train : n_train + n_val]
    out["test"] = ranked[n_train + n_val :]
  return {name: sorted(ids) for name, ids in out.items()}
