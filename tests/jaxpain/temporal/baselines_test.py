"""Baselines: retrieval finds the matching stimulus, shapes, the mean face."""

import numpy as np

from jaxpain.temporal import baselines
from jaxpain.temporal import data as data_lib
from synth import sequences as sq


def _recs(n=3, t=200):
  rng = np.random.default_rng(0)
  au = rng.uniform(0, 5, (n, t, sq.NUM_AUS)).astype(np.float32)
  stim = np.cumsum(rng.normal(0, 0.1, (n, t)), 1).astype(np.float32)
  return data_lib.Recordings(au, stim, sq.pspi(au), np.ones(n),
                             np.zeros(n, int), np.arange(n), {})


def test_nearest_retrieves_the_window_with_that_stimulus():
  recs = _recs()
  query = recs.stimulus[1:2, 40:90]
  out = baselines.nearest(recs, query, samples=2, stride=1)
  assert out.shape == (2, 1, 50, sq.NUM_AUS)
  np.testing.assert_array_equal(out[0, 0], recs.au[1, 40:90])


def test_random_and_mean_face():
  recs = _recs()
  stim = np.zeros((4, 30), np.float32)
  r = baselines.random_window(recs, stim, samples=3, seed=0)
  assert r.shape == (3, 4, 30, sq.NUM_AUS)
  np.testing.assert_array_equal(r, baselines.random_window(recs, stim, 3, 0))
  m = baselines.mean_face(recs, stim, samples=2)
  np.testing.assert_allclose(m[1, 3, 7], recs.au.mean((0, 1)), rtol=1e-5)
