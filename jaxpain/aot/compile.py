"""Ahead-of-time compile of the trainer's own train step for a topology.

Nothing here re-implements the trainer: the config is read as the trainer
reads it, the mesh comes from `jaxpain.sharding.mesh_from_config`, the
state from `jaxpain.train.state.create` under `sharding.abstract_init`
(shapes and shardings, nothing allocated), the step from
`jaxpain.train.steps.make_train_step` (its in/out shardings and donation),
lowered with the trainer's logical-axis rules. Only the batch is made up:
ShapeDtypeStructs of what the input pipeline yields.

A distilled student needs a teacher; its abstract stand-in is built from
configs/teacher.py (or the teacher run's config.json when
config.teacher.workdir is set) with the student's model size.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from jaxpain import sharding as shd
from jaxpain.train import config as config_lib
from jaxpain.train import state as state_lib
from jaxpain.train import steps as steps_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def load_config(spec: str) -> ml_collections.ConfigDict:
  """'configs/teacher.py:variant=L/16' -> the config the trainer would use.

  A relative config path is also looked up from the repository root.
  """
  path, sep, arg = spec.partition(":")
  if not os.path.isfile(path) and os.path.isfile(os.path.join(ROOT, path)):
    path = os.path.join(ROOT, path)
  return config_lib.load_config_file(path + sep + arg)


def step_kind(config) -> str:
  """'teacher', 'distilled' or 'student' (which train step this config is)."""
  if config.mode == "teacher":
    return "teacher"
  return "distilled" if (config.teacher.required
                         or config.teacher.workdir) else "student"


def batch_spec(config, source_size: int, distilled: bool
               ) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes and dtypes of one global batch from the input pipeline."""
  b, s = config.batch_size, source_size
  spec = {"au": ((b, 6), jnp.float32), "pspi": ((b,), jnp.float32),
          "identity": ((b,), jnp.int32), "record": ((b,), jnp.int32),
          "mask": ((b,), jnp.float32)}
  if config.mode == "teacher" or distilled:
    spec["heatmap"] = ((b, s, s, 1), jnp.uint8)
  if config.mode == "student":
    spec["image"] = ((b, s, s, 3), jnp.uint8)
    if config.model.use_neutral:
      spec["neutral"] = ((b, s, s, 3), jnp.uint8)
  return {k: jax.ShapeDtypeStruct(*v) for k, v in spec.items()}


def teacher_config(config) -> ml_collections.ConfigDict:
  """The config of the teacher a distilled student is compiled with."""
  if config.teacher.workdir:
    return state_lib.read_run_config(config.teacher.workdir)
  t = load_config("configs/teacher.py")
  for k in ("variant", "image_size", "patch_size", "dtype", "param_dtype",
            "scan_blocks", "remat", "attention_impl", "official_compat"):
    t.model[k] = config.model[k]
  t.sharding_rules = config.sharding_rules
  t.mesh = config.mesh
  return t


def abstract_teacher(config, mesh) -> state_lib.Teacher:
  """A Teacher whose groups are ShapeDtypeStructs (same code as training)."""
  tcfg = teacher_config(config)
  with shd.abstract_init():
    setup = state_lib.create(tcfg, mesh, total_steps=1)
  groups = dict(setup.train["params"], **setup.consts)
  return state_lib.Teacher(setup.parts, tcfg.model.to_dict(), groups)


@dataclasses.dataclass
class Lowered:
  """What compiling one case produced (before analysis)."""

  config: ml_collections.ConfigDict
  mesh: Any
  kind: str
  compiled: Any
  lower_s: float
  compile_s: float
  batch: dict
  source_size: int


def _abstract_batch(config, mesh, source_size: int, kind: str) -> dict:
  batch_sh = shd.batch_sharding(mesh, config.batch_axes)
  return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=batch_sh)
          for k, v in batch_spec(config, source_size,
                                 kind == "distilled").items()}


def lower_and_compile(config, devices, source_size: int = 256) -> Lowered:
  """Compiles `config`'s train step for `devices` (compile-only is fine)."""
  config = ml_collections.ConfigDict(config.to_dict())
  _validate(config)
  mesh = shd.mesh_from_config(config, devices)
  shd.check_batch(config.batch_size, mesh, config.batch_axes)
  kind = step_kind(config)
  with shd.abstract_init():
    setup = state_lib.create(config, mesh, total_steps=1000)
  teacher = abstract_teacher(config, mesh) if kind == "distilled" else None
  batch = _abstract_batch(config, mesh, source_size, kind)
  tgroups = teacher.groups if teacher is not None else None
  with shd.mesh_context(mesh, setup.parts.rules):
    step = steps_lib.make_train_step(config, setup, mesh, teacher)
    t0 = time.perf_counter()
    lowered = step.lower(setup.train, setup.consts, tgroups, batch)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
  return Lowered(config, mesh, kind, compiled, t1 - t0, t2 - t1, batch,
                 source_size)


def _validate(config) -> None:
  """config_lib.validate; a distilled student needs no teacher run here
  (without one, the teacher is the same size, see teacher_config)."""
  checked = ml_collections.ConfigDict(config.to_dict())
  if checked.teacher.required and not checked.teacher.workdir:
    checked.teacher.required = False
  config_lib.validate(checked)


def compile_augmentation(config, devices, source_size: int = 256):
  """The step's input preparation alone (resize, augment, normalise),
  compiled with the step's batch layout: what it costs next to the model.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  mesh = shd.mesh_from_config(config, devices)
  batch = _abstract_batch(config, mesh, source_size, step_kind(config))
  batch = {k: v for k, v in batch.items()
           if k in ("image", "neutral", "heatmap")}
  aug = steps_lib.augment_config(config)

  def prepare(batch):
    key = jax.random.key(config.seed)
    return steps_lib.model_inputs(config, batch, key, aug)

  with shd.mesh_context(mesh):
    return jax.jit(prepare).lower(batch).compile()


def versions() -> dict[str, str]:
  from importlib import metadata

  out = {}
  for name in ("jax", "jaxlib", "flax", "optax", "libtpu"):
    try:
      out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      out[name] = _libtpu_version() if name == "libtpu" else "n/a"
  out["code"] = _git_commit()
  return out


def _git_commit() -> str:
  """The checkout's commit (a result says which model code it compiled)."""
  import subprocess  # noqa: PLC0415

  try:
    return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True,
                          timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return "n/a"


def _libtpu_version() -> str:
  from jaxpain.aot import chips

  path = chips.libtpu_path()
  if path is None:
    return "n/a"
  site = os.path.dirname(os.path.dirname(path))
  for entry in sorted(os.listdir(site)):
    if entry.startswith("libtpu-") and entry.endswith(".dist-info"):
      return entry[len("libtpu-"):-len(".dist-info")]
  return "unknown"


def dump(obj: Any) -> str:
  return json.dumps(obj, indent=1, sort_keys=True, default=str)
