"""Model builders for the tests: fast JAX models, shared jitted calls.

A JAX random init compiles one RNG kernel per parameter shape, which would
dominate these tests. Most tests therefore build models from a numpy-random
released-layout state dict through `convert.vitpain_from_checkpoint` (no
random init at all); `fresh_model` (a real init) is used where the init
itself is under test.
"""

import dataclasses
import functools

import jax
import numpy as np
from flax import nnx

from jaxpain import convert
from jaxpain.convert import keymap
from jaxpain.models import vitpain


def config(**kw) -> vitpain.ViTPainConfig:
  kw.setdefault('variant', 'mu/16')
  kw.setdefault('image_size', 32)
  return vitpain.ViTPainConfig(**kw)


def random_state_dict(cfg: vitpain.ViTPainConfig, seed: int = 0) -> dict:
  """Released-layout weights: matrices N(0, 1/fan_in), vectors N(0, 0.3)
  (norm scales around 1), LoRA B non-zero, the two towers sharing one base
  as in the release."""
  rs = np.random.RandomState(seed)
  sd = {}
  for e in keymap.vitpain_entries(cfg):
    shape = e.torch_shape
    std = 0.3 if len(shape) < 2 else float(np.prod(shape[1:])) ** -0.5
    w = rs.normal(0.0, std, shape).astype(np.float32)
    if e.key.endswith(('norm1.weight', 'norm2.weight', 'norm.weight')):
      w += 1.0
    sd[e.key] = w
  sd['au_head.bias'] = np.ones((1,), np.float32)  # keep the AU ReLU alive
  for k in sd:
    if k.startswith('neutral_encoder.') and 'lora_' not in k:
      sd[k] = sd['vit_model.' + k[len('neutral_encoder.'):]]
  return sd


def model(seed: int = 0, **kw) -> vitpain.ViTPain:
  cfg = config(**kw)
  return convert.vitpain_from_checkpoint(cfg, random_state_dict(cfg, seed))


def fresh_model(**kw) -> vitpain.ViTPain:
  """A randomly initialised model (cached per config; always a copy)."""
  return nnx.clone(_built(config(**kw)))


@functools.cache
def _built(cfg):
  key = lambda s: jax.random.key(s, impl='unsafe_rbg')
  return vitpain.ViTPain(cfg, rngs=nnx.Rngs(params=key(0), dropout=key(1)))


@functools.cache
def forward_fn():
  """One jitted forward for all tests (cached per graph structure)."""
  return nnx.jit(lambda m, x, n: m(x, n))


@functools.cache
def encoder_fn():
  return nnx.jit(lambda e, x, groups: e(x, groups=groups),
                 static_argnums=2)


def images(b=2, h=32, w=32, seed=0) -> np.ndarray:
  return np.random.RandomState(seed).randn(b, h, w, 3).astype(np.float32)


def replace(cfg, **kw):
  return dataclasses.replace(cfg, **kw)
