"""Tests of the shared 3DPain data model (synth/records.py)."""

import numpy as np
import pytest

from synth import records


@pytest.mark.parametrize(
    "au, expected",
    [
        # Rows of the released annotations (reference.md §A.3).
        ((4, 2, 4, 3, 1, 1), 12),
        ((4, 5, 5, 0, 5, 0), 14),
        ((5, 3, 4, 1, 3, 0), 12),
        ((0, 3, 3, 0, 0, 1), 4),
        ((0, 0, 0, 0, 0, 0), 0),
        ((5, 5, 5, 5, 5, 1), 16),
    ],
)
def test_pspi_matches_formula(au, expected):
  assert records.pspi(np.array(au)) == expected


def test_pspi_is_batched_and_takes_maxima():
  au = np.array([[1, 2, 0, 0, 3, 0], [1, 0, 2, 3, 0, 1]])
  np.testing.assert_array_equal(records.pspi(au), [6, 7])


def test_pspi_rejects_wrong_au_count():
  with pytest.raises(ValueError, match="6 AUs"):
    records.pspi(np.zeros(5))


def test_identity_key_sorts_by_identity_then_expression_then_view():
  keys = [records.identity_key(i, e, v)
          for i in (2, 10) for e in (0, 10) for v in (0, 2)]
  assert keys == sorted(keys)
  assert len(set(keys)) == len(keys)
