"""Tests of the PSPI formula and the pain-expression sampler."""

import numpy as np
import pytest

from synth import pain_levels, records

# reference.md §A.3: records of identity 0000 in the released dataset.
RELEASED_ROWS = [
    ([4, 2, 4, 3, 1, 1], 12),
    ([4, 5, 5, 0, 5, 0], 14),
    ([5, 3, 4, 1, 3, 0], 12),
    ([4, 4, 4, 2, 5, 0], 13),
    ([0, 3, 3, 0, 0, 1], 4),
]


@pytest.mark.parametrize("au,expected", RELEASED_ROWS + [
    ([0, 0, 0, 0, 0, 0], 0),
    ([5, 5, 5, 5, 5, 1], 16),
    ([1, 0, 3, 4, 0, 0], 8),
])
def test_pspi_formula(au, expected):
  assert records.pspi(np.array(au)) == expected


def test_pspi_batch_and_bad_shape():
  batch = np.array([row for row, _ in RELEASED_ROWS])
  np.testing.assert_array_equal(records.pspi(batch),
                                [p for _, p in RELEASED_ROWS])
  with pytest.raises(ValueError, match="6 AUs"):
    records.pspi(np.zeros(5))


def test_decomposition_table_is_complete():
  table = pain_levels.au_vectors_by_pspi()
  assert sorted(table) == list(range(17))
  assert sum(len(v) for v in table.values()) == 6**5 * 2
  assert len(table[1]) == 8  # one unit in AU4, AU6, AU7, AU9, AU10 or AU43
  for level, vecs in table.items():
    np.testing.assert_array_equal(records.pspi(vecs), level)


@pytest.mark.parametrize("dist,rng_range,support", [
    ("uniform", (1, 16), range(1, 17)),
    ("stratified", (1, 16), range(1, 17)),
    ("paper_like", (1, 16), range(4, 15)),
    ("uniform", (3, 7), range(3, 8)),
])
def test_samples_cover_exactly_the_support(dist, rng_range, support):
  rng = np.random.default_rng(0)
  au = pain_levels.sample_pain_aus(rng, 2000, dist, rng_range)
  assert au.shape == (2000, 6)
  assert set(records.pspi(au).tolist()) == set(support)
  assert au[:, :5].min() >= 0 and au[:, :5].max() <= 5
  assert set(au[:, 5].tolist()) <= {0, 1}


def test_uniform_default_is_roughly_uniform():
  n = 8000
  au = pain_levels.sample_pain_aus(np.random.default_rng(1), n)
  counts = np.bincount(records.pspi(au), minlength=17)[1:]
  expected = n / 16
  chi2 = ((counts - expected) ** 2 / expected).sum()
  assert chi2 < 50.0  # 15 dof: p < 1e-5 above 45; a skewed sampler fails


def test_stratified_spreads_levels_within_an_identity():
  au = pain_levels.sample_pain_aus(np.random.default_rng(2), 10, "stratified")
  assert len(set(records.pspi(au).tolist())) == 10


def test_sampler_is_deterministic_given_the_generator():
  a = pain_levels.sample_pain_aus(np.random.default_rng(5))
  b = pain_levels.sample_pain_aus(np.random.default_rng(5))
  np.testing.assert_array_equal(a, b)
  assert a.shape == (records.NUM_PAIN_EXPRESSIONS, 6)


@pytest.mark.parametrize("kwargs,match", [
    ({"distribution": "gaussian"}, "unknown PSPI distribution"),
    ({"pspi_range": (0, 17)}, "pspi_range"),
    ({"pspi_range": (5, 2)}, "pspi_range"),
    ({"pspi_range": (1.5, 3)}, "pspi_range"),
    ({"distribution": "paper_like", "pspi_range": (15, 16)}, "overlap"),
    ({"n": -1}, "non-negative"),
])
def test_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    pain_levels.sample_pain_aus(np.random.default_rng(0), **kwargs)
