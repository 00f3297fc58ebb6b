"""Building the sharded training state, the frozen teacher, and init_from.

Everything is created already sharded: `jax.eval_shape` gives the abstract
model, the config's logical-axis rules give each leaf a NamedSharding, and
one `jax.jit(init, out_shardings=...)` materialises parameters and
optimizer state directly in that layout (jaxpain.sharding).

Pytrees (plain dicts, see model_lib):
  train  = {'step', 'params': {'lora', 'head'}, 'opt_state'}   donated
  consts = {'frozen', 'rngs', 'other'}                         read-only
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from jaxpain import sharding as shd
from jaxpain.train import checkpoint as ckpt_lib
from jaxpain.train import model_lib, optim


@dataclasses.dataclass
class ModelParts:
  """A model as the trainer holds it: static graph + sharded pure states."""

  name: str
  graphdef: Any
  shardings: dict  # group -> pytree of NamedSharding
  rules: tuple  # complete flax rules (every logical name mapped)


def describe(model_cfg: Mapping, seed: int, mesh, rules) -> ModelParts:
  """Abstract model -> graphdef, group shardings (nothing allocated)."""
  model = nnx.eval_shape(lambda: model_lib.build(model_cfg, seed))
  graphdef, groups = model_lib.split(model, model_cfg["name"],
                                     model_cfg.get("train_base", False))
  shardings = {
      g: model_lib.to_nested(s, lambda v: shd.state_shardings(v, rules, mesh))
      for g, s in groups.items()
  }
  full_rules = shd.flax_rules(rules, groups)
  return ModelParts(model_cfg["name"], graphdef, shardings, full_rules)


def _init_groups(model_cfg: Mapping, seed: int) -> dict:
  model = model_lib.build(model_cfg, seed)
  _, groups = model_lib.split(model, model_cfg["name"],
                              model_cfg.get("train_base", False))
  return {g: model_lib.pure(s) for g, s in groups.items()}


@dataclasses.dataclass
class TrainSetup:
  parts: ModelParts
  tx: optax.GradientTransformation
  schedules: dict
  train: dict  # donated train state
  consts: dict
  train_shardings: dict
  const_shardings: dict


def create(config: ml_collections.ConfigDict, mesh, total_steps: int
           ) -> TrainSetup:
  """Sharded model + optimizer state for `config` (fresh initialisation)."""
  rules = tuple(config.sharding_rules)
  model_cfg = config.model.to_dict()
  parts = describe(model_cfg, config.seed, mesh, rules)
  repl = shd.replicated(mesh)
  abs_groups = jax.eval_shape(lambda: _init_groups(model_cfg, config.seed))
  params_abs = {g: abs_groups[g] for g in model_lib.TRAINABLE}
  tx, scheds = optim.make(config.optim.to_dict(), params_abs, total_steps)
  p_sh = {g: parts.shardings[g] for g in model_lib.TRAINABLE}
  opt_sh = optim.state_shardings(jax.eval_shape(tx.init, params_abs), p_sh,
                                 repl)
  train_sh = {"step": repl, "params": p_sh, "opt_state": opt_sh}
  const_sh = {g: parts.shardings[g] for g in ("frozen", "rngs", "other")}

  def init(seed):
    groups = _init_groups(model_cfg, seed)
    params = {g: groups[g] for g in model_lib.TRAINABLE}
    train = {"step": jnp.zeros((), jnp.int32), "params": params,
             "opt_state": tx.init(params)}
    return train, {g: groups[g] for g in const_sh}

  # The seed is traced, not baked in: seeds of one model share a program.
  train, consts = shd.sharded_init(init, (train_sh, const_sh), mesh,
                                   jnp.asarray(config.seed, jnp.uint32))
  return TrainSetup(parts, tx, scheds, train, consts, train_sh, const_sh)


def checkpoint_tree(setup: TrainSetup) -> dict:
  """What a checkpoint stores (the rng group is rebuilt, not saved)."""
  return {"train": setup.train, "frozen": setup.consts["frozen"],
          "other": setup.consts["other"]}


def set_from_checkpoint(setup: TrainSetup, tree: Mapping) -> None:
  setup.train = tree["train"]
  setup.consts = dict(setup.consts, frozen=tree["frozen"],
                      other=tree["other"])


# ------------------------------------------------------------ init_from ----


def _leaves_by_path(tree) -> dict:
  return {tuple(p): x for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _key_str(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def load_params_from_run(setup: TrainSetup, workdir: str,
                         which: str | int = "best") -> dict:
  """init_from kind='checkpoint': copy matching parameters of another run.

  Every parameter (LoRA, heads, frozen base) whose path and shape match is
  loaded; the optimizer state and step start fresh. Returns counts.
  """
  ck = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                             read_only=True)
  step = ck.resolve(which)
  if step is None:
    raise ckpt_lib.CheckpointError(
        f"no checkpoint {which!r} in {ck.directory} (steps: "
        f"{ck.all_steps()}); check config.init_from.path / .checkpoint.")
  saved = _leaves_by_path(ck.metadata(step))
  ours = {"train": {"params": setup.train["params"]},
          "frozen": setup.consts["frozen"]}
  want, skipped = {}, []
  for path, x in _leaves_by_path(ours).items():
    meta = saved.get(path)
    if meta is not None and tuple(meta.shape) == tuple(x.shape):
      want[path] = ckpt_lib.abstract(x)
    else:
      skipped.append(_key_str(path))
  if not want:
    raise ckpt_lib.CheckpointError(
        f"no parameter of {ck.directory} step {step} matches this model; "
        "is it a run of the same model family?")
  target = _unflatten_paths(want)
  loaded = _leaves_by_path(ck.restore_partial(step, target))
  ours_leaves = _leaves_by_path(ours)
  ours_leaves.update(loaded)
  new = jax.tree_util.tree_unflatten(
      jax.tree_util.tree_structure(ours), list(ours_leaves.values()))
  setup.train = dict(setup.train, params=new["train"]["params"])
  setup.consts = dict(setup.consts, frozen=new["frozen"])
  ck.close()
  logging.info("init_from %s step %d: %d loaded, %d kept fresh %s", workdir,
               step, len(loaded), len(skipped), skipped[:10])
  return {"loaded": len(loaded), "skipped": len(skipped), "step": step}


def _unflatten_paths(leaves: Mapping[tuple, Any]) -> dict:
  out: dict = {}
  for path, x in leaves.items():
    node = out
    keys = [getattr(k, "key", getattr(k, "name", k)) for k in path]
    for k in keys[:-1]:
      node = node.setdefault(k, {})
    node[keys[-1]] = x
  return out


def load_torch_weights(setup: TrainSetup, config, mesh) -> dict:
  """init_from kind='timm' | 'vitpain': PyTorch weights via jaxpain.convert.

  'timm' loads DINOv3 backbone weights into the frozen base(s) (the released
  pretraining start); 'vitpain' loads a released ViTPain checkpoint (LoRA,
  heads, base). The converter fills an ABSTRACT model, so no random
  initialisation runs on the host; exactly the parameters it set replace
  this run's (placed with this run's shardings), the rest keep their init.
  """
  from jaxpain import convert  # no torch needed

  cfg = config.model.to_dict()
  model = nnx.eval_shape(lambda: model_lib.build(cfg, config.seed))
  kind = config.init_from.kind
  if kind == "timm":
    convert.load_timm_backbone(model, config.init_from.path)
  else:
    convert.load_vitpain(model, config.init_from.path)
  _, groups = model_lib.split(model, cfg["name"], cfg.get("train_base"))
  targets = {"lora": ("train", "params", "lora"),
             "head": ("train", "params", "head"),
             "frozen": ("consts", "frozen")}
  loaded = 0
  for group, where in targets.items():
    ours = _get(setup, where)
    new = model_lib.pure(groups[group])
    merged = jax.tree.map(
        lambda mine, theirs: mine if isinstance(theirs, jax.ShapeDtypeStruct)
        else jax.device_put(theirs.astype(mine.dtype), mine.sharding),
        ours, new)
    loaded += sum(not isinstance(x, jax.ShapeDtypeStruct)
                  for x in jax.tree.leaves(new))
    _set(setup, where, merged)
  if not loaded:
    raise ckpt_lib.CheckpointError(
        f"{config.init_from.path} set no parameter of this model")
  return {"loaded": loaded}


def _get(setup, where):
  node = setup.train if where[0] == "train" else setup.consts
  for k in where[1:]:
    node = node[k]
  return node


def _set(setup, where, value):
  if where[0] == "train":
    params = dict(setup.train["params"], **{where[2]: value})
    setup.train = dict(setup.train, params=params)
  else:
    setup.consts = dict(setup.consts, **{where[1]: value})


# ------------------------------------------------------------- teacher -----


@dataclasses.dataclass
class Teacher:
  parts: ModelParts
  model_cfg: dict
  groups: dict  # all five groups, sharded, never updated


def read_run_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"{path} not found: config.teacher.workdir must be the workdir of a "
        "finished teacher run (python -m jaxpain.train --config "
        "configs/teacher.py ...).")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_teacher(workdir: str, which: str | int, mesh, seed: int) -> Teacher:
  """The frozen teacher: its run's model config and restored parameters."""
  tcfg = read_run_config(workdir)
  model_cfg = tcfg.model.to_dict()
  parts = describe(model_cfg, seed, mesh, tuple(tcfg.sharding_rules))
  ck = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                             read_only=True)
  step = ck.resolve(which)
  if step is None:
    raise ckpt_lib.CheckpointError(
        f"teacher run {workdir} has no checkpoint {which!r} "
        f"(steps: {ck.all_steps()}); train the teacher first.")
  abs_groups = jax.eval_shape(lambda: _init_groups(model_cfg, seed))
  target = {g: jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
      abs_groups[g], parts.shardings[g]) for g in model_lib.GROUPS}
  partial = {"train": {"params": {g: target[g] for g in model_lib.TRAINABLE}},
             "frozen": target["frozen"], "other": target["other"]}
  tree = ck.restore_partial(step, partial)
  ck.close()
  groups = dict(tree["train"]["params"], frozen=tree["frozen"],
                other=tree["other"])
  groups["rngs"] = _concrete_rngs(target["rngs"], seed)
  logging.info("teacher: %s step %d, %d params", workdir, step,
               model_lib.count({g: groups[g] for g in model_lib.TRAINABLE}))
  return Teacher(parts, model_cfg, groups)


def _concrete_rngs(abs_rngs: Any, seed: int) -> Any:
  """Fresh RngState values (the teacher runs deterministically)."""

  def one(a):
    if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
      x = jax.random.key(seed)
    else:
      x = jnp.zeros(a.shape, a.dtype)
    return jax.device_put(x, a.sharding)

  return jax.tree.map(one, abs_rngs)


def host_params(setup: TrainSetup) -> dict[str, np.ndarray]:
  """All parameters as flat numpy arrays keyed by path (tests, reports)."""
  tree = {"params": setup.train["params"], "frozen": setup.consts["frozen"]}
  flat = _leaves_by_path(shd.to_host(tree))
  return {_key_str(p): np.asarray(x) for p, x in flat.items()}
