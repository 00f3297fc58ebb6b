"""The AU axis: every AU poseable by the rig, PSPI in closed form."""

import numpy as np
import pytest

from synth import rig
from synth.sequences import aus


def test_every_sequence_au_is_rigged_with_the_rig_range():
  assert set(aus.SEQ_AUS) <= set(rig.AU_BLENDSHAPES)
  assert set(aus.PAIN_CORE) <= set(aus.SEQ_AUS)
  for name, hi in zip(aus.SEQ_AUS, aus.AU_MAX, strict=True):
    assert hi == rig.AU_MAX[name]
  assert 13 <= aus.NUM_AUS <= 15 and len(aus.EMOTIONS) == 8
  assert aus.EMOTIONS[5] == "Neutral"  # PainDiffusion's class order.


def test_pspi_is_the_prkachin_solomon_sum():
  rng = np.random.default_rng(0)
  au = rng.uniform(0, 5, (7, 3, aus.NUM_AUS)).astype(np.float32)
  au[..., aus.AU_INDEX["AU43"]] = rng.integers(0, 2, (7, 3))
  get = lambda n: au[..., aus.AU_INDEX[n]]
  expected = (get("AU4") + np.maximum(get("AU6"), get("AU7"))
              + np.maximum(get("AU9"), get("AU10")) + get("AU43"))
  np.testing.assert_array_equal(aus.pspi(au), expected)
  full = np.asarray(aus.AU_MAX)
  assert aus.pspi(full) == aus.PSPI_MAX
  # Non-pain AUs do not count.
  other = np.zeros(aus.NUM_AUS)
  other[[aus.AU_INDEX[n] for n in ("AU1", "AU12", "AU27")]] = 5
  assert aus.pspi(other) == 0
  with pytest.raises(ValueError, match="last axis"):
    aus.pspi(np.zeros((4, 6)))


def test_saturate_is_monotone_bounded_and_identity_below_the_knee():
  x = np.linspace(-2, 40, 2001)
  y = aus.saturate(x)
  assert np.all(np.diff(y) >= 0) and y.min() == 0 and y.max() <= 5
  low = (x >= 0) & (x <= 4)
  np.testing.assert_allclose(y[low], x[low], atol=1e-6)
  assert y[-1] > 4.99


def test_pspi_runs_on_jax_arrays_under_jit():
  jax = pytest.importorskip("jax")
  au = np.random.default_rng(1).uniform(0, 5, (4, aus.NUM_AUS))
  au = au.astype(np.float32)
  out = jax.jit(aus.pspi)(jax.numpy.asarray(au))
  np.testing.assert_allclose(np.asarray(out), aus.pspi(au), rtol=1e-6)
