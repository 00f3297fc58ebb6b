"""EDM preconditioning and the per-token loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpain.temporal import edm

SD = 0.5


def test_preconditioning_matches_karras_formulas():
  sigma = jnp.array([0.002, 0.5, 80.0])
  c_in, c_skip, c_out, c_noise = edm.precondition(sigma, SD)
  s2 = np.asarray(sigma) ** 2 + SD**2
  np.testing.assert_allclose(c_in, 1 / np.sqrt(s2), rtol=1e-6)
  np.testing.assert_allclose(c_skip, SD**2 / s2, rtol=1e-6)
  np.testing.assert_allclose(c_out, np.asarray(sigma) * SD / np.sqrt(s2),
                             rtol=1e-6)
  np.testing.assert_allclose(c_noise, np.log(np.asarray(sigma)) / 4,
                             rtol=1e-6)
  # Limits: nearly clean input passes through, pure noise is replaced.
  assert c_skip[0] > 0.9999 and c_out[0] < 0.0021
  assert c_skip[2] < 1e-4
  # c_in x has unit variance for data of std SD plus noise sigma.
  np.testing.assert_allclose(c_in**2 * s2, 1.0, rtol=1e-6)


def test_l2_loss_is_unweighted_mse_on_the_network_target():
  """lambda = 1/c_out^2 makes the loss on D an MSE on F's target."""
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  x0 = jax.random.normal(k1, (2, 5, 8)) * SD
  sigma = jnp.exp(jax.random.normal(k2, (2, 5)))
  x = x0 + sigma[..., None] * jax.random.normal(k3, x0.shape)
  f = jnp.ones_like(x) * 0.3
  _, c_skip, c_out, _ = edm.precondition(sigma, SD)
  d = c_skip[..., None] * x + c_out[..., None] * f
  target = (x0 - c_skip[..., None] * x) / c_out[..., None]
  want = jnp.square(f - target).mean(-1)
  got = edm.token_loss(d, x0, sigma, SD, "l2")
  np.testing.assert_allclose(got, want, rtol=1e-4)
  got1 = edm.token_loss(d, x0, sigma, SD, "l1")
  np.testing.assert_allclose(got1, jnp.abs(f - target).mean(-1), rtol=1e-4)


def test_loss_weight_is_per_token_not_batch_mean():
  """A token's loss depends on its own sigma only (§G.4's quirk fixed)."""
  x0 = jnp.zeros((1, 3, 4))
  d = jnp.full((1, 3, 4), 0.1)
  a = edm.token_loss(d, x0, jnp.array([[0.1, 1.0, 10.0]]), SD)
  b = edm.token_loss(d, x0, jnp.array([[0.1, 50.0, 0.01]]), SD)
  assert float(a[0, 0]) == pytest.approx(float(b[0, 0]))
  assert float(a[0, 1]) != pytest.approx(float(b[0, 1]))


def test_schedules():
  s = edm.karras_sigmas(35, 0.002, 80.0)
  assert s[0] == pytest.approx(0.002) and s[-1] == pytest.approx(80.0)
  assert np.all(np.diff(s) > 0)
  table = edm.level_table(8, 0.002, 80.0)
  assert table.shape == (9,) and table[0] == 0.0
  with pytest.raises(ValueError):
    edm.loss_weight(jnp.ones(2), SD, "huber")
