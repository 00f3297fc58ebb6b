"""All sharding mechanics: mesh, logical-axis rules, sharded init, batches.

Configs choose; this module implements (style.md, "Sharding"). The model
annotates its parameters with LOGICAL axis names ('embed', 'mlp', 'heads',
...); a config maps those names to the mesh axes ('data', 'fsdp', 'tensor').
Nothing else in the project names a mesh axis.

Why our own rule resolution instead of flax's eager sharding: flax 0.12.8
shards a Variable while it is created and fails on any logical name that is
not in the rules, or on a dimension the mesh axis does not divide. For tiny
test models on meshes such as (1, 4, 2) that is the common case, so we
create variables unsharded inside `jax.jit` and give the jit explicit
`out_shardings` computed here, replicating (and reporting) dimensions that
do not divide. Parameters are therefore still born sharded: no full copy
ever sits on one device.

jax versions: `jax.set_mesh` exists in 0.10.2 .. 0.12 (`jax.sharding.use_mesh`
does not exist in 0.10.2), so `mesh_context` uses `jax.set_mesh`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from flax.core import spmd as flax_spmd
from jax.experimental import mesh_utils, multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from synth.cli_errors import UserError

Rules = Sequence[tuple[str, Any]]

# Metadata keys under which flax versions keep a Variable's logical names.
_SHARDING_KEYS = ("out_sharding", "sharding_names", "sharding")


class ShardingError(UserError):
  """A mesh or batch that does not fit the devices or the data."""


# ---------------------------------------------------------------- mesh ------


def resolve_mesh_shape(
    shape: Sequence[int], num_devices: int
) -> tuple[int, ...]:
  """Replaces the one -1 entry of `shape` so the product is `num_devices`.

  Args:
    shape: mesh axis sizes, at most one of them -1.
    num_devices: the number of devices the mesh must cover exactly.

  Returns:
    The concrete shape.

  Raises:
    ShardingError: when the shape cannot cover exactly `num_devices`.
  """
  shape = tuple(int(s) for s in shape)
  free = [i for i, s in enumerate(shape) if s == -1]
  if len(free) > 1 or any(s == 0 or s < -1 for s in shape):
    raise ShardingError(
        f"mesh shape {shape}: use positive sizes and at most one -1."
    )
  fixed = math.prod(s for s in shape if s != -1)
  if free:
    if num_devices % fixed:
      raise ShardingError(
          f"mesh shape {shape} needs a multiple of {fixed} devices, but "
          f"there are {num_devices}. Change config.mesh.shape."
      )
    shape = tuple(num_devices // fixed if s == -1 else s for s in shape)
  if math.prod(shape) != num_devices:
    raise ShardingError(
        f"mesh shape {shape} covers {math.prod(shape)} devices, but there "
        f"are {num_devices}. Change config.mesh.shape (one axis may be -1)."
    )
  return shape


def create_mesh(
    shape: Sequence[int],
    axis_names: Sequence[str],
    devices: Sequence[Any] | None = None,
    dcn_axis: str = "data",
) -> Mesh:
  """Builds a mesh with Auto axes (stack.md §8: Explicit breaks attention).

  On devices of several TPU slices (multi-slice, joined by the data-centre
  network), `shape` is the mesh inside ONE slice and `dcn_axis` is laid
  across the slices (its size multiplied by their number), so every other
  axis stays on the slice's ICI, where bandwidth is 10-100x higher. A
  config thus runs unchanged on one slice or several.

  Args:
    shape: axis sizes, one of them may be -1.
    axis_names: e.g. ('data', 'fsdp', 'tensor').
    devices: defaults to all devices of all processes.
    dcn_axis: the axis laid across slices (multi-slice only).

  Returns:
    The mesh.
  """
  if len(shape) != len(axis_names):
    raise ShardingError(
        f"mesh shape {tuple(shape)} and axes {tuple(axis_names)} differ "
        "in length."
    )
  devices = list(devices) if devices is not None else jax.devices()
  auto = (jax.sharding.AxisType.Auto,) * len(shape)
  slices = num_slices(devices)
  if slices == 1:
    shape = resolve_mesh_shape(shape, len(devices))
    try:
      return jax.make_mesh(shape, tuple(axis_names), auto, devices=devices)
    except NotImplementedError:  # e.g. tensor=2 on a 4x4x4 torus
      grid = mesh_utils.create_device_mesh(
          shape, devices, allow_split_physical_axes=True)
      return Mesh(grid, tuple(axis_names), axis_types=auto)
  if dcn_axis not in axis_names:
    raise ShardingError(
        f"mesh axes {tuple(axis_names)} have no {dcn_axis!r} axis to lay "
        "across the slices; set config.mesh.dcn_axis.")
  if len(devices) % slices:
    raise ShardingError(f"{len(devices)} devices in {slices} slices of "
                        "unequal size")
  ici = resolve_mesh_shape(shape, len(devices) // slices)
  dcn = [slices if a == dcn_axis else 1 for a in axis_names]
  grid = mesh_utils.create_hybrid_device_mesh(ici, dcn, devices)
  return Mesh(grid, tuple(axis_names), axis_types=auto)


def mesh_from_config(config: Any, devices: Sequence[Any] | None = None
                     ) -> Mesh:
  """The mesh a run config asks for (config.mesh: shape, axes, dcn_axis)."""
  return create_mesh(config.mesh.shape, config.mesh.axes, devices,
                     config.mesh.get("dcn_axis", "data"))


def num_slices(devices: Sequence[Any]) -> int:
  """How many TPU slices (DCN-joined groups) the devices span."""
  return len({getattr(d, "slice_index", 0) or 0 for d in devices})


def mesh_context(mesh: Mesh, rules: Rules | None = None):
  """Context that makes `mesh` (and flax's logical rules) current.

  Model code may add logical activation constraints; they resolve through
  flax's `logical_axis_rules` against the mesh set here.
  """
  stack = contextlib.ExitStack()
  stack.enter_context(jax.set_mesh(mesh))
  if rules is not None:
    stack.enter_context(nnx.logical_axis_rules(tuple(rules)))
  return stack


# ------------------------------------------------- activation layout -------


def constrain_batch(x: jax.Array) -> jax.Array:
  """Pins an activation to the batch layout: rows over the 'batch' rule's
  mesh axes, everything else whole on each device.

  Model code calls this at block boundaries. Without it, XLA's sharding
  propagation follows the weights: under fsdp (weights split along
  'embed') it split the activations along 'embed' too and REPLICATED the
  batch, so every chip computed every example (found by compiling L/16 for
  v5p-128: 73 GiB of temporaries at 2 pairs per chip, jaxpain.aot). A
  no-op outside a mesh context or without a 'batch' rule.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return x
  rules = dict(flax_spmd.get_logical_axis_rules() or ())
  axes = rules.get("batch")
  axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
  axes = tuple(a for a in axes if mesh.shape.get(a, 1) > 1)
  if not axes or x.shape[0] % math.prod(mesh.shape[a] for a in axes):
    return x
  return jax.lax.with_sharding_constraint(x, P(axes))


# ------------------------------------------------------------- rules -------


def _axis_size(mesh: Mesh, axes: Any) -> int:
  if axes is None:
    return 1
  if isinstance(axes, str):
    axes = (axes,)
  return math.prod(mesh.shape[a] for a in axes)


def logical_names(variable: nnx.Variable) -> tuple[Any, ...] | None:
  """The logical axis names a Variable was annotated with, or None."""
  meta = variable.get_metadata()
  for key in _SHARDING_KEYS:
    names = meta.get(key)
    if names:
      return tuple(names)
  return None


def logical_to_spec(
    names: Sequence[Any] | None,
    shape: Sequence[int],
    rules: Rules,
    mesh: Mesh,
    on_skip: Callable[[str], None] | None = None,
) -> P:
  """Maps logical names of one array to a mesh PartitionSpec.

  A dimension stays replicated when its name has no rule (or maps to None),
  when its mesh axes are already used by an earlier dimension, or when the
  mesh axes do not divide its size (reported through `on_skip`).
  """
  if not names:
    return P()
  table = dict(rules)
  used: set[str] = set()
  spec = []
  for dim, name in zip(shape, names, strict=True):
    axes = table.get(name) if name is not None else None
    if isinstance(axes, str):
      axes = (axes,)
    axes = tuple(a for a in (axes or ()) if mesh.shape.get(a, 1) > 1)
    if not axes or used & set(axes):
      spec.append(None)
      continue
    if dim % _axis_size(mesh, axes):
      if on_skip:
        on_skip(f"{name}={dim} not divisible by mesh {axes}")
      spec.append(None)
      continue
    used.update(axes)
    spec.append(axes[0] if len(axes) == 1 else axes)
  return P(*spec)


def state_shardings(state: Any, rules: Rules, mesh: Mesh) -> Any:
  """NamedShardings for an (abstract) nnx.State or pytree of Variables.

  Args:
    state: nnx.State from `nnx.split` / `nnx.eval_shape`.
    rules: (logical name, mesh axes) pairs.
    mesh: the mesh.

  Returns:
    A pytree of the same structure as the state's arrays (Variables
    replaced by their NamedSharding).
  """
  skipped: set[str] = set()

  def one(x):
    if isinstance(x, nnx.Variable):
      value = x.get_value()
      spec = logical_to_spec(
          logical_names(x), value.shape, rules, mesh, skipped.add
      )
      return NamedSharding(mesh, spec)
    return NamedSharding(mesh, P())

  out = jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))
  if skipped:
    logging.info("replicated dims (not divisible): %s", sorted(skipped))
  return out


def flax_rules(rules: Rules, state: Any) -> tuple[tuple[str, Any], ...]:
  """Completes `rules` with None for every logical name the state uses.

  flax treats an unknown logical name as a mesh axis name; mapping every
  name explicitly keeps activation constraints in model code safe.
  """
  names = set()
  for v in jax.tree.leaves(
      state, is_leaf=lambda x: isinstance(x, nnx.Variable)
  ):
    if isinstance(v, nnx.Variable):
      names.update(n for n in (logical_names(v) or ()) if n is not None)
  known = {name for name, _ in rules}
  return tuple(rules) + tuple((n, None) for n in sorted(names - known))


# ------------------------------------------------------------- init --------


_ABSTRACT = contextvars.ContextVar("jaxpain_abstract_init", default=False)


@contextlib.contextmanager
def abstract_init():
  """Within this context `sharded_init` allocates nothing.

  It returns `jax.ShapeDtypeStruct`s carrying the shardings instead, so the
  trainer's own state creation (`jaxpain.train.state.create`) yields the
  abstract arguments of an ahead-of-time compile (jaxpain.aot), on devices
  that cannot hold data (TPU topologies compiled for on a CPU machine).
  """
  token = _ABSTRACT.set(True)
  try:
    yield
  finally:
    _ABSTRACT.reset(token)


def sharded_init(
    init_fn: Callable[..., Any], shardings: Any, mesh: Mesh, *args
) -> Any:
  """Runs `init_fn(*args)` under jit so its outputs are created sharded.

  Args:
    init_fn: returns a pytree of arrays (e.g. pure-dict states).
    shardings: matching pytree of NamedShardings.
    mesh: the mesh (made current while tracing).
    *args: traced arguments (e.g. the seed: one compiled program then
      serves every seed, and XLA's persistent cache can reuse it).

  Returns:
    The initialised pytree, each leaf laid out as in `shardings` (under
    `abstract_init`: ShapeDtypeStructs with those shardings).
  """
  with mesh_context(mesh):
    if _ABSTRACT.get():
      return abstract_like(jax.eval_shape(init_fn, *args), shardings)
    return jax.jit(init_fn, out_shardings=shardings)(*args)


def abstract_like(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs of `tree`'s leaves with the matching shardings."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      tree, shardings)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replication_report(arrays: Any, mesh: Mesh) -> dict[str, float]:
  """How much parameter memory is replicated on every device.

  maxtext warns when parameters are insufficiently sharded; this returns the
  numbers for the trainer's log: total bytes, bytes per device and the
  fraction of bytes that are fully replicated although the mesh has model
  axes (fsdp/tensor) larger than 1.
  """
  total = per_device = replicated_bytes = 0
  for x in jax.tree.leaves(arrays):
    nbytes = x.size * x.dtype.itemsize
    total += nbytes
    shard = x.sharding.shard_shape(x.shape)
    per_device += math.prod(shard) * x.dtype.itemsize
    if tuple(shard) == tuple(x.shape):
      replicated_bytes += nbytes
  return {
      "param_bytes": float(total),
      "param_bytes_per_device": float(per_device),
      "replicated_fraction": replicated_bytes / max(total, 1),
      "model_parallel": float(mesh.size // _axis_size(mesh, _data_axes(mesh))),
  }


def _data_axes(mesh: Mesh) -> tuple[str, ...]:
  return tuple(a for a in mesh.axis_names if a == "data")


# ------------------------------------------------------------- batches -----


def batch_sharding(mesh: Mesh, batch_axes: Sequence[str]) -> NamedSharding:
  """Sharding of a batch: the leading dimension split over `batch_axes`."""
  axes = tuple(a for a in batch_axes if a in mesh.axis_names)
  return NamedSharding(mesh, P(axes if axes else None))


def check_batch(global_batch: int, mesh: Mesh, batch_axes: Sequence[str]):
  """Raises when the global batch cannot be split over the batch axes."""
  n = _axis_size(mesh, [a for a in batch_axes if a in mesh.axis_names])
  if global_batch % n:
    raise ShardingError(
        f"batch size {global_batch} is not divisible by the {n} shards of "
        f"the batch axes {tuple(batch_axes)} on mesh {dict(mesh.shape)}. "
        f"Use a multiple of {n}, or change config.mesh.shape."
    )
  if global_batch % jax.process_count():
    raise ShardingError(
        f"batch size {global_batch} is not divisible by the "
        f"{jax.process_count()} processes."
    )


def process_rows(
    global_batch: int, sharding: NamedSharding
) -> tuple[int, int]:
  """The contiguous rows [start, stop) of a global batch this process feeds.

  Derived from the sharding itself (not from process_index * size), so the
  data each process loads is exactly what its devices hold, for any mesh.
  The pipeline then produces the same global batch for any number of
  processes, which makes runs comparable across layouts.
  """
  index_map = sharding.addressable_devices_indices_map((global_batch,))
  rows = set()
  for idx in index_map.values():
    sl = idx[0] if idx else slice(None)
    rows.update(range(*sl.indices(global_batch)))
  start, stop = min(rows), max(rows) + 1
  if len(rows) != stop - start:
    raise ShardingError(
        "this process's devices hold non-contiguous batch rows; order the "
        "mesh devices so each process owns a contiguous block of the batch."
    )
  return start, stop


def to_global(batch: dict[str, np.ndarray], sharding: NamedSharding,
              global_batch: int) -> dict[str, jax.Array]:
  """Host-local numpy rows -> global `jax.Array`s sharded along the batch."""

  def one(x):
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(
        sharding, x, (global_batch,) + x.shape[1:]
    )

  return jax.tree.map(one, batch)


def to_host(tree: Any) -> Any:
  """Fetches (possibly multi-host sharded) arrays as full numpy arrays."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, tree)
  return multihost_utils.process_allgather(tree, tiled=True)
