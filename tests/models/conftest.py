"""Fixtures for the model tests: tiny PyTorch references, fast JAX builds.

Random init of a JAX model compiles one RNG kernel per parameter shape,
which dominates the run time of tiny-model tests; models here are therefore
built once per configuration and cloned, or built from a state dict without
random init (`convert.vitpain_from_checkpoint`).
"""

import functools

import jax
import numpy as np
import pytest
from flax import nnx

from jaxpain.models import vitpain


def rbg_rngs(seed: int = 0) -> nnx.Rngs:
  """RNG streams on XLA's RngBitGenerator: much cheaper to compile."""
  key = lambda s: jax.random.key(s, impl='unsafe_rbg')
  return nnx.Rngs(params=key(seed), dropout=key(seed + 1))


@functools.cache
def _built(cfg: vitpain.ViTPainConfig):
  return vitpain.ViTPain(cfg, rngs=rbg_rngs())


def fresh_model(**kw) -> vitpain.ViTPain:
  """A randomly initialised model (cached per config; always a copy)."""
  kw.setdefault('variant', 'mu/16')
  kw.setdefault('image_size', 32)
  return nnx.clone(_built(vitpain.ViTPainConfig(**kw)))


@functools.cache
def forward_fn():
  """One jitted forward shared by all tests (cached per graph structure)."""
  return nnx.jit(
    lambda m, x, n: m(x, n), static_argnums=())


def images(b=2, h=32, w=32, seed=0) -> np.ndarray:
  return np.random.RandomState(seed).randn(b, h, w, 3).astype(np.float32)


@pytest.fixture
def fwd():
  return forward_fn()
