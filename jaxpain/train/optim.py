"""AdamW with the released two parameter groups, schedule and clipping.

Groups (reference.md §B.2): LoRA at `lora_lr_mult` (0.1) x the base lr;
everything else trainable (heads, cross-attention, norms) at the base lr.
Both anneal with a cosine to `end_lr` (released eta_min 1e-6), after an
optional linear warm-up. The released code steps the cosine per epoch; we
step it per optimiser step (smoother, same end points). Gradients are
clipped by their global L2 norm (1.0) over both groups together, before the
groups split, as Lightning's `gradient_clip_val` does. Weight decay 0.1
applies to every trainable parameter, norms and biases included (released).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import optax
from jax.sharding import NamedSharding


def schedule(peak: float, end: float, total_steps: int,
             warmup_steps: int = 0) -> optax.Schedule:
  """Linear warm-up from 0, then cosine from `peak` to `end`."""
  total_steps = max(int(total_steps), 1)
  end = min(end, peak)
  if warmup_steps > 0:
    return optax.warmup_cosine_decay_schedule(
        0.0, peak, warmup_steps, max(total_steps, warmup_steps + 1), end)
  alpha = end / peak if peak > 0 else 0.0
  return optax.cosine_decay_schedule(peak, total_steps, alpha)


def _adamw(lr: optax.Schedule, cfg: Mapping) -> optax.GradientTransformation:
  return optax.adamw(lr, b1=cfg["b1"], b2=cfg["b2"], eps=cfg["eps"],
                     weight_decay=cfg["weight_decay"])


def make(cfg: Mapping, params: Mapping[str, Any], total_steps: int
         ) -> tuple[optax.GradientTransformation, dict[str, optax.Schedule]]:
  """The optimiser for trainable params {'lora': ..., 'head': ...}.

  Returns:
    (transformation, {'lora': schedule, 'head': schedule}) for logging.
  """
  peak = cfg["lr"]
  scheds = {
      "head": schedule(peak, cfg["end_lr"], total_steps, cfg["warmup_steps"]),
      "lora": schedule(peak * cfg["lora_lr_mult"], cfg["end_lr"],
                       total_steps, cfg["warmup_steps"]),
  }
  labels = {g: jax.tree.map(lambda _, g=g: g, params[g]) for g in params}
  tx = optax.multi_transform(
      {g: _adamw(scheds[g], cfg) for g in params}, labels)
  if cfg["clip_norm"]:
    tx = optax.chain(optax.clip_by_global_norm(cfg["clip_norm"]), tx)
  return tx, scheds


def state_shardings(opt_shapes: Any, param_shardings: Any,
                    replicated: NamedSharding) -> Any:
  """Shardings for an optimiser state: moments follow their parameter.

  Each optimiser leaf whose key path ENDS with a parameter's key path (and
  has its shape) gets that parameter's sharding; counters and other leaves
  are replicated. optax.tree_map_params does not handle the masked states
  of multi_transform, hence this path-suffix match.
  """
  by_path = {}
  for path, sh in jax.tree_util.tree_flatten_with_path(param_shardings)[0]:
    by_path[tuple(path)] = sh

  def one(path, leaf):
    path = tuple(path)
    for start in range(len(path)):
      sh = by_path.get(path[start:])
      if sh is not None and len(sh.spec) <= len(leaf.shape):
        return sh
    return replicated

  return jax.tree_util.tree_map_with_path(one, opt_shapes)
