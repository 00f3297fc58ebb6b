"""EDM (Karras et al. 2022) pieces, with one noise level per token.

Preconditioning (reference.md §G.4): with sigma_data the data's standard
deviation,

  c_in   = 1 / sqrt(sigma^2 + sigma_data^2)
  c_skip = sigma_data^2 / (sigma^2 + sigma_data^2)
  c_out  = sigma * sigma_data / sqrt(sigma^2 + sigma_data^2)
  c_noise = ln(sigma) / 4
  D(x; sigma) = c_skip * x + c_out * F(c_in * x, c_noise)

Diffusion forcing draws sigma independently per token (ln sigma ~
N(P_mean, P_std^2)), so everything here broadcasts a (B, T) sigma over the
token's features.

The loss weighting, decided (§G.4 lists the original's quirk): the released
code weights an L1 loss with lambda of the BATCH-MEAN sigma. With per-token
sigmas that is inconsistent: the mean of a log-normal batch is dominated by
its few large draws, so every token, the nearly clean ones included, gets
the weight of a high-noise token, and the effective weight of a token
depends on what else is in the batch. We weight PER TOKEN by
lambda(sigma) = 1 / c_out(sigma)^2 for 'l2' (standard EDM: the loss on D
becomes an unweighted MSE on the network output F's target, so every noise
level contributes at the same scale) and by 1 / c_out(sigma) for 'l1' (the
same argument for an absolute error). 'l2' is the default.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

LOSSES = ("l2", "l1")


def precondition(sigma: jax.Array, sigma_data: float):
  """(c_in, c_skip, c_out, c_noise), each shaped like `sigma`."""
  sigma = jnp.asarray(sigma, jnp.float32)
  s2 = jnp.square(sigma) + sigma_data**2
  c_in = jax.lax.rsqrt(s2)
  c_skip = sigma_data**2 / s2
  c_out = sigma * sigma_data * c_in
  c_noise = jnp.log(sigma) / 4.0
  return c_in, c_skip, c_out, c_noise


def karras_sigmas(num: int, sigma_min: float, sigma_max: float,
                  rho: float = 7.0) -> np.ndarray:
  """`num` noise levels, ASCENDING from sigma_min to sigma_max (rho spacing).

  Karras et al. interpolate sigma^(1/rho) linearly; the released sampler
  uses rho 7, 0.002 .. 80 and 35 levels.
  """
  if num < 2:
    raise ValueError(f"need at least 2 noise levels, got {num}")
  ramp = np.linspace(0.0, 1.0, num)
  lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
  return ((lo + ramp * (hi - lo)) ** rho).astype(np.float32)


def level_table(num_levels: int, sigma_min: float, sigma_max: float,
                rho: float = 7.0) -> np.ndarray:
  """sigma per level index: [0 (clean), sigma_min, ..., sigma_max].

  Level 0 is exactly clean (context tokens, the final output); levels
  1..num_levels are the Karras schedule. The last step therefore goes to
  sigma 0, where the first-order update returns D itself (bounded).
  """
  return np.concatenate([[0.0], karras_sigmas(
      num_levels, sigma_min, sigma_max, rho)]).astype(np.float32)


def karras_sigma(level, num_levels: int, sigma_min: float,
                 sigma_max: float, rho: float = 7.0):
  """sigma at a (continuous) level in [1, num_levels] of `karras_sigmas`."""
  frac = (level - 1.0) / (num_levels - 1.0)
  lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
  return (lo + frac * (hi - lo)) ** rho


def sample_sigmas(key: jax.Array, shape: tuple[int, ...], p_mean: float,
                  p_std: float) -> jax.Array:
  """ln sigma ~ N(p_mean, p_std^2), independently per entry (per token)."""
  return jnp.exp(p_mean + p_std * jax.random.normal(key, shape))


def loss_weight(sigma: jax.Array, sigma_data: float, kind: str) -> jax.Array:
  """Per-token weight: 1 / c_out^2 ('l2') or 1 / c_out ('l1')."""
  if kind not in LOSSES:
    raise ValueError(f"loss {kind!r} not in {LOSSES}")
  _, _, c_out, _ = precondition(sigma, sigma_data)
  return 1.0 / jnp.square(c_out) if kind == "l2" else 1.0 / c_out


def token_loss(denoised: jax.Array, clean: jax.Array, sigma: jax.Array,
               sigma_data: float, kind: str = "l2") -> jax.Array:
  """Weighted per-token error, (B, T).

  Args:
    denoised: D(x; sigma), (B, T, F).
    clean: x0, (B, T, F).
    sigma: (B, T) noise level of each token.
    sigma_data: the data standard deviation of the preconditioning.
    kind: 'l2' (mean squared error) or 'l1' (mean absolute error) over the
      token's features.

  Returns:
    lambda(sigma) * error, per token.
  """
  diff = denoised.astype(jnp.float32) - clean.astype(jnp.float32)
  err = jnp.square(diff) if kind == "l2" else jnp.abs(diff)
  return loss_weight(sigma, sigma_data, kind) * err.mean(-1)
