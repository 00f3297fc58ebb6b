"""Released PainDiffusion weights -> `ReleasedDenoiser`, strictly.

The released file (`model.safetensors`, really a torch pickle, reference.md
§G.3) holds {'state_dict': ..., 'config': ...}. It is read with
`jaxpain.temporal.torch_checkpoint.load_paindiffusion_checkpoint`, which
never executes code from the file. Here the network is built from the
config and every tensor is placed by walking the module tree: each module
names its children as the released state_dict does (`torch_children`), and
each leaf layer converts its own tensors (conv [O, I, K] -> [K, I, O],
linear [O, I] -> [I, O], RMSNorm gain [1, C, 1] -> [C]).

Strict: every released key must be used or be one of the keys this module
lists as ignored (`torch_ignored`: the U-Net's unused `context_mlp` and the
temporal blocks' unused `context_proj`s), every parameter must be filled,
every shape must match; otherwise ONE error names the missing, unexpected
and mis-shaped keys. Nothing is half-loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxpain.temporal.released import layers
from jaxpain.temporal.released.unet import ReleasedConfig, ReleasedDenoiser

LEAVES = (layers.Conv, layers.Linear, layers.RMSNorm)
# Names shown per category in an error before "... and N more".
SHOWN = 8


class WeightsError(ValueError):
  """A released state_dict that does not fit the network."""


def _children(module: nnx.Module, prefix: str) -> Iterator[tuple]:
  """(torch prefix, child) of a composite module; lists by index."""
  for attr, tname in module.torch_children().items():
    child = getattr(module, attr)
    if isinstance(child, nnx.List):
      for i, item in enumerate(child):
        yield f"{prefix}{tname}.{i}.", item
    else:
      yield f"{prefix}{tname}.", child


def walk(module: nnx.Module, prefix: str = "") -> Iterator[tuple]:
  """Yields (torch prefix, leaf layer) for every parameterised layer."""
  if isinstance(module, LEAVES):
    yield prefix, module
    return
  for child_prefix, child in _children(module, prefix):
    yield from walk(child, child_prefix)


def ignored_keys(module: nnx.Module, prefix: str = ""
                 ) -> dict[str, tuple[int, ...]]:
  """Released keys read and ignored (unused by the forward), with shapes."""
  if isinstance(module, LEAVES):
    return {}
  out = {prefix + k: v for k, v in getattr(module, "torch_ignored",
                                           dict)().items()}
  for child_prefix, child in _children(module, prefix):
    out.update(ignored_keys(child, child_prefix))
  return out


def expected_keys(model: ReleasedDenoiser) -> dict[str, tuple[int, ...]]:
  """Every key of the released state_dict with its shape, ignored ones
  included."""
  out = {}
  for prefix, leaf in walk(model):
    out.update({prefix + k: v for k, v in leaf.torch_params().items()})
  out.update(ignored_keys(model))
  return out


def _listing(kind: str, names: list[str]) -> str:
  more = f" ... and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
  return f"{len(names)} {kind}: {', '.join(names[:SHOWN])}{more}"


def check_state_dict(model: ReleasedDenoiser,
                     state_dict: dict[str, Any]) -> None:
  """Raises WeightsError unless keys and shapes are exactly the expected."""
  want = expected_keys(model)
  missing = sorted(set(want) - set(state_dict))
  unexpected = sorted(set(state_dict) - set(want))
  shaped = sorted(
      f"{k} {tuple(np.shape(state_dict[k]))} != {want[k]}"
      for k in set(want) & set(state_dict)
      if tuple(np.shape(state_dict[k])) != tuple(want[k]))
  problems = [_listing(kind, names) for kind, names in
              (("missing", missing), ("unexpected", unexpected),
               ("mis-shaped", shaped)) if names]
  if problems:
    raise WeightsError("released state_dict does not fit the network "
                       f"built from its config: {'; '.join(problems)}")


def abstract(cfg: ReleasedConfig) -> ReleasedDenoiser:
  """The module with shape-only parameters (no initialisation cost)."""
  return nnx.eval_shape(lambda: ReleasedDenoiser(cfg, rngs=nnx.Rngs(0)))


def from_state_dict(cfg: ReleasedConfig,
                    state_dict: dict[str, Any]) -> ReleasedDenoiser:
  """Builds the network from `cfg` and fills it from a released
  state_dict (names -> arrays); strict (see module docstring)."""
  model = abstract(cfg)
  check_state_dict(model, state_dict)
  for prefix, leaf in walk(model):
    tensors = {k: np.asarray(state_dict[prefix + k], np.float32)
               for k in leaf.torch_params()}
    leaf.from_torch(tensors)
  unfilled = [str(p) for p, v in nnx.to_flat_state(nnx.state(model))
              if not isinstance(v.get_value(), jnp.ndarray)]
  if unfilled:
    raise WeightsError(f"parameters left unfilled: {unfilled[:SHOWN]}")
  return model


def load_released(path, latent_width: int | None = None
                  ) -> tuple[ReleasedDenoiser, dict[str, Any]]:
  """Reads a released PainDiffusion checkpoint into `ReleasedDenoiser`.

  Args:
    path: the released `model.safetensors` (a torch pickle).
    latent_width: frame vector width L; None: the released 128.

  Returns:
    (model, info): info has the parsed `ReleasedConfig` ('config'), the
    raw YAML dict ('yaml'), the keys read and ignored ('ignored') and the
    parameter count ('params').

  Raises:
    CheckpointError: (a ValueError) unreadable file, unsupported config,
      or a state_dict that does not fit; one line naming the file and the
      keys.
  """
  from jaxpain.temporal.torch_checkpoint import (
      CheckpointError,
      load_paindiffusion_checkpoint,
  )

  state_dict, conf = load_paindiffusion_checkpoint(path)
  kw = {} if latent_width is None else {"latent_width": latent_width}
  try:
    cfg = ReleasedConfig.from_released(conf, **kw)
    model = from_state_dict(cfg, state_dict)
  except ValueError as e:
    raise CheckpointError(f"{os.fspath(path)}: {e}; is it the PainDiffusion "
                          "release (a video model)?") from None
  info = {"config": cfg, "yaml": conf,
          "ignored": sorted(ignored_keys(model)),
          "params": num_params(model)}
  return model, info


def num_params(model: nnx.Module) -> int:
  return int(sum(np.prod(v.shape) for _, v in
                 nnx.to_flat_state(nnx.state(model, nnx.Param))))
