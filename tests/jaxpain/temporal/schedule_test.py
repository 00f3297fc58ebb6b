"""The pyramid matrix: earlier tokens finish first, context untouched."""

import numpy as np
import pytest

from jaxpain.temporal import schedule


@pytest.mark.parametrize("u", [0.0, 0.5, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("context", [0, 2, 4])
def test_pyramid_properties(u, context):
  levels, window = 10, 8
  p = schedule.pyramid(levels, window, context, u)
  new = window - context
  assert p.shape == (schedule.num_steps(levels, new, u) + 1, window)
  assert np.all(p[:, :context] == 0)  # context stays clean throughout
  assert np.all(p[0, context:] == levels)  # new tokens start as noise
  assert np.all(p[-1] == 0)  # and end clean
  steps = np.diff(p, axis=0)
  assert np.all((steps == 0) | (steps == -1))  # one level per evaluation
  assert np.all(np.any(steps != 0, axis=1))  # no wasted evaluation
  # Earlier tokens are never noisier: levels rise along the window.
  assert np.all(np.diff(p[:, context:], axis=1) >= 0)
  done = (p[:, context:] == 0).argmax(axis=0)  # row where each finishes
  assert np.all(np.diff(done) >= 0)
  if u >= 1:
    assert np.all(np.diff(done) >= np.floor(u))


def test_released_real_time_count():
  """u = 4, H = 6 new tokens: L + 20 evaluations per chunk (§G.4)."""
  assert schedule.num_steps(34, 6, 4.0) == 54
  assert schedule.pyramid(34, 8, 2, 4.0).shape == (55, 8)


def test_bad_arguments():
  with pytest.raises(ValueError):
    schedule.pyramid(10, 8, 8, 1.0)
  with pytest.raises(ValueError):
    schedule.pyramid(10, 8, 2, -1.0)
