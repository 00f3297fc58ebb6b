"""Models by name, and how the trainer splits a model into parameter groups.

A registered model is any nnx.Module called as
`model(images, neutral=None|..., deterministic=bool, key=jax.Array|None)`
that returns a dict with 'pspi' (B,) in (0, 1), 'binary_logits' (B, 3),
'au' (B, 6) and 'features' (B, D), plus two nnx filters: which parameters
are LoRA and which are trainable at all.

The trainer keeps a model as pure-dict states in five groups:

  lora    trainable LoRA parameters         (optimizer group 'lora')
  head    every other trainable parameter   (optimizer group 'head')
  frozen  other nnx.Param (the frozen base, frozen AU queries)
  rngs    nnx.RngState (not checkpointed; dropout keys are passed per step)
  other   any remaining state

Pure dicts (not nnx.State objects) make optax, Orbax and the shardings see
the same plain pytrees on every flax version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
from flax import nnx

GROUPS = ("lora", "head", "frozen", "rngs", "other")
TRAINABLE = ("lora", "head")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """How to build one kind of model and which of its parameters train."""

  build: Callable[[Mapping[str, Any], nnx.Rngs], nnx.Module]
  lora_filter: Any
  trainable_filter: Any
  # Raises ValueError for a model config that cannot be built (cheap: no
  # parameters are made). None: no check beyond building.
  check: Callable[[Mapping[str, Any]], None] | None = None


_REGISTRY: dict[str, Callable[[], ModelSpec]] = {}


def register_model(name: str, spec: Callable[[], ModelSpec]) -> None:
  """Registers a (lazily built) ModelSpec under `name`."""
  _REGISTRY[name] = spec


def _vitpain_spec() -> ModelSpec:
  from jaxpain.models import vitpain

  fields = {f.name for f in dataclasses.fields(vitpain.ViTPainConfig)}

  def model_config(cfg):  # __post_init__ checks the fields
    kwargs = {k: v for k, v in dict(cfg).items() if k in fields}
    return vitpain.ViTPainConfig(**kwargs)

  def build(cfg, rngs):
    return vitpain.ViTPain(model_config(cfg), rngs=rngs)

  return ModelSpec(build, vitpain.lora_filter, vitpain.trainable_filter,
                   check=model_config)


register_model("vitpain", _vitpain_spec)


def get_spec(name: str) -> ModelSpec:
  if name not in _REGISTRY:
    raise ValueError(f"unknown model {name!r}; registered: {sorted(_REGISTRY)}")
  return _REGISTRY[name]()


def check(model_cfg: Mapping[str, Any]) -> None:
  """ConfigError when `model_cfg` names an unknown model or bad fields."""
  from jaxpain.train.config import ConfigError

  try:
    spec = get_spec(model_cfg["name"])
    if spec.check is not None:
      spec.check(model_cfg)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"config.model: {e}") from None


def build(model_cfg: Mapping[str, Any], seed: int) -> nnx.Module:
  """Builds the model unsharded (the caller jits this with out_shardings)."""
  spec = get_spec(model_cfg["name"])
  eager = getattr(nnx, "use_eager_sharding", None)
  ctx = eager(False) if eager else _null()
  with ctx:
    return spec.build(model_cfg, nnx.Rngs(params=seed, dropout=seed + 1))


class _null:
  def __enter__(self):
    return self

  def __exit__(self, *a):
    return False


def split(model: nnx.Module, model_name: str, train_base: bool = False):
  """graphdef and the five group States (as nnx.State, Variables kept).

  `train_base` makes every nnx.Param trainable (in the 'head' group): for
  training from scratch, where a frozen random backbone would be useless.
  """
  spec = get_spec(model_name)
  trainable = nnx.Param if train_base else spec.trainable_filter
  lora_f = nnx.All(spec.lora_filter, trainable)
  graphdef, *states = nnx.split(
      model, lora_f, trainable, nnx.Param, nnx.RngState, ...)
  return graphdef, dict(zip(GROUPS, states, strict=True))


def to_nested(state: Any, leaf: Callable[[nnx.Variable], Any]) -> dict:
  """nnx.State -> nested plain dict, `leaf(variable)` at every leaf."""
  out: dict = {}
  for path, var in nnx.to_flat_state(state):
    node = out
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = leaf(var)
  return out


def pure(state: Any) -> dict:
  """nnx.State -> nested dict of arrays."""
  return to_nested(state, lambda v: v.get_value())


def merge(graphdef, groups: Mapping[str, Any]) -> nnx.Module:
  """Rebuilds the model from its graphdef and the five pure-dict groups."""
  return nnx.merge(graphdef, *(groups[g] for g in GROUPS))


def count(tree: Any) -> int:
  return int(sum(x.size for x in jax.tree.leaves(tree)))
