"""A small model with ViTPain's interface, for fast tests of the trainer.

Patch embedding, one MLP block, LoRA-style adapter parameters and the four
ViTPain heads, with logical axis names on every parameter, a frozen base and
dropout driven by an explicit key. It compiles in a fraction of the time of
the real ViTPain, so mechanics (sharding, resume, bad input) can be tested
on many meshes; the real tiny ViTPain is used where the model matters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxpain.train import model_lib


class Frozen(nnx.Param):
  """Frozen base weights."""


class Lora(nnx.Param):
  """Adapter weights (optimizer group 'lora')."""


def _p(kind, key, shape, names, scale=0.2):
  init = nnx.with_partitioning(
      lambda k, s, d: scale * jax.random.normal(k, s, d), names)
  return kind(init(key, shape, jnp.float32))


class TinyPain(nnx.Module):
  """images (B, H, W, C) [+ neutral] -> ViTPain's output dict."""

  def __init__(self, width=16, patch=8, in_channels=3, use_neutral=True,
               image_size=16, *, rngs: nnx.Rngs):
    k = rngs.params
    pdim = patch * patch * 3
    self.patch, self.use_neutral = patch, use_neutral
    self.embed = _p(Frozen, k(), (pdim, width), ("patch", "embed"))
    self.lora_a = _p(Lora, k(), (pdim, 4), ("patch", "lora_rank"))
    self.lora_b = _p(Lora, k(), (4, width), ("lora_rank", "embed"), 0.0)
    self.w1 = _p(nnx.Param, k(), (width, 32), ("embed", "mlp"))
    self.w2 = _p(nnx.Param, k(), (32, width), ("mlp", "embed"))
    self.mix = _p(nnx.Param, k(), (2 * width, width), (None, "embed"))
    self.head = _p(nnx.Param, k(), (width, 1 + 3 + 6), ("embed", None))

  def _encode(self, x):
    b, h, w, c = x.shape
    if c == 1:
      x = jnp.broadcast_to(x, (b, h, w, 3))
    p = self.patch
    x = x.reshape(b, h // p, p, w // p, p, 3).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, -1, p * p * 3)
    t = x @ self.embed[...] + (x @ self.lora_a[...]) @ self.lora_b[...]
    t = t + jax.nn.gelu(t @ self.w1[...]) @ self.w2[...]
    return t.mean(axis=1)

  def __call__(self, images, neutral=None, *, deterministic=True, key=None):
    f = self._encode(images)
    if neutral is not None:
      f = jnp.concatenate([f, self._encode(neutral)], -1) @ self.mix[...]
    if not deterministic:
      keep = jax.random.bernoulli(key, 0.9, f.shape)
      f = jnp.where(keep, f / 0.9, 0.0)
    out = f @ self.head[...]
    return {"pspi": jax.nn.sigmoid(out[:, 0]), "pspi_logit": out[:, 0],
            "binary_logits": out[:, 1:4], "au": jax.nn.relu(out[:, 4:]),
            "features": f}


def _spec():
  def build(cfg, rngs):
    return TinyPain(use_neutral=cfg.get("use_neutral", True), rngs=rngs)

  trainable = nnx.All(nnx.Param, nnx.Not(Frozen))
  return model_lib.ModelSpec(build, Lora, trainable)


model_lib.register_model("tiny", _spec)


def tiny_config(mode="student", **data):
  """A complete trainer config around TinyPain and the toy data."""
  from jaxpain.train import config as config_lib

  c = config_lib.base_config()
  c.mode = mode
  config_lib.apply_runlocal(c)
  c.model.name = "tiny"
  c.model.image_size = 16
  c.model.use_neutral = mode == "student"
  c.model.train_base = False
  c.data.name = "toy/10"
  c.data.update(data)
  c.progress_bar = False
  c.async_checkpoints = False
  return c
