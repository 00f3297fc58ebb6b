"""TPU chips and named topologies, and compile-only devices for them.

JAX compiles for a TPU topology that is not attached: libtpu's compiler
runs on the CPU and `jax.experimental.topologies` hands back compile-only
devices (stack.md §13). This module names the pods users rent, carries the
per-chip figures the report divides by, and finds libtpu.

libtpu is looked up, in order: $TPU_LIBRARY_PATH; an importable `libtpu`
module (a `jax[tpu]` install); `<venv>/libtpu/libtpu/libtpu.so`, where
scripts/setup_env.sh installs it with `pip install --target`, so that plain
CPU jax elsewhere (the test suite, the trainer) never sees a TPU plugin.

Chip figures (Google Cloud TPU system-architecture pages, docs.cloud.google
.com/tpu/docs/{v5e,v5p,v6e}): bf16 peak per chip; HBM capacity and
bandwidth; ICI bandwidth per chip (the "inter-chip interconnect BW" row:
v5e 1,600 Gbps, v5p 4,800 Gbps, v6e 3,200 Gbps, i.e. one direction over
all ports; the bidirectional rows say 400 / 1,200 / 800 GB/s); ICI ports
per chip (2D torus: 4, 3D torus: 6); DCN bandwidth per chip (v5e: 2 x 100
Gbps NICs per 8-chip host = 25 Gbps; v5p: 50 Gbps, the page's row; v6e:
4 x 200 Gbps per 8-chip host = 100 Gbps).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import sys

GIB = 2**30


class TopologyError(ValueError):
  """An unknown topology name or a missing libtpu."""


@dataclasses.dataclass(frozen=True)
class Chip:
  """Per-chip figures of one TPU generation (see the module docstring)."""

  name: str
  device_kind: str  # jax's device_kind, checked against the devices
  hbm_bytes: int
  hbm_bw: float  # bytes/s
  peak_bf16: float  # FLOP/s
  ici_bw: float  # bytes/s, one direction, all ports together
  ici_ports: int
  dcn_bw: float  # bytes/s per chip

  def ici_bw_over(self, dims: int) -> float:
    """Bandwidth a ring collective over `dims` torus dimensions can use.

    A bidirectional ring along one torus dimension drives 2 of the chip's
    ports; a collective over k dimensions drives 2k of them.
    """
    return self.ici_bw * min(1.0, 2 * max(dims, 1) / self.ici_ports)


CHIPS = {
    "v5e": Chip("v5e", "TPU v5 lite", 16 * GIB, 819e9, 197e12,
                1600e9 / 8, 4, 25e9 / 8),
    "v5p": Chip("v5p", "TPU v5", 95 * GIB, 2765e9, 459e12,
                4800e9 / 8, 6, 50e9 / 8),
    "v6e": Chip("v6e", "TPU v6 lite", 32 * GIB, 1640e9, 918e12,
                3200e9 / 8, 4, 100e9 / 8),
}


@dataclasses.dataclass(frozen=True)
class Topology:
  """A rentable slice (or several over DCN) by its Cloud name."""

  name: str  # e.g. 'v5e-256', '2xv5e-256'
  chip: Chip
  shape: str  # libtpu topology, e.g. '16x16' or '4x4x4'
  num_slices: int = 1

  @property
  def chips_per_slice(self) -> int:
    n = 1
    for d in self.shape.split("x"):
      n *= int(d)
    return n

  @property
  def num_chips(self) -> int:
    return self.chips_per_slice * self.num_slices


def _topo(name: str, chip: str, shape: str, slices: int = 1) -> Topology:
  return Topology(name, CHIPS[chip], shape, slices)


# Cloud names: v5e/v6e count chips, v5p counts TensorCores (2 per chip), so
# v5p-128 is 64 chips (4x4x4). '2xv5e-256' is two v5e-256 slices over DCN.
TOPOLOGIES = {t.name: t for t in (
    _topo("v5e-4", "v5e", "2x2"),
    _topo("v5e-8", "v5e", "2x4"),
    _topo("v5e-16", "v5e", "4x4"),
    _topo("v5e-64", "v5e", "8x8"),
    _topo("v5e-256", "v5e", "16x16"),
    _topo("2xv5e-256", "v5e", "16x16", 2),
    _topo("v5p-8", "v5p", "2x2x1"),
    _topo("v5p-128", "v5p", "4x4x4"),
    _topo("v5p-256", "v5p", "4x4x8"),
    _topo("v6e-16", "v6e", "4x4"),
    _topo("v6e-256", "v6e", "16x16"),
)}


_V5P_SHAPES = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4",
               128: "4x4x8", 256: "4x8x8", 512: "8x8x8"}


def larger_memory_twin(topology: Topology) -> Topology | None:
  """The same number of chips (and slices) as v5p, the chip with the most
  HBM: a program too big for `topology` may compile there, and show what
  fills the memory."""
  shape = _V5P_SHAPES.get(topology.chips_per_slice)
  if shape is None or topology.chip.name == "v5p":
    return None
  return Topology(f"{topology.name}-as-v5p", CHIPS["v5p"], shape,
                  topology.num_slices)


def get(name: str) -> Topology:
  if name not in TOPOLOGIES:
    raise TopologyError(
        f"unknown topology {name!r}; known: {', '.join(TOPOLOGIES)}")
  return TOPOLOGIES[name]


def libtpu_path() -> str | None:
  """Where libtpu.so is (see the module docstring), or None."""
  env = os.environ.get("TPU_LIBRARY_PATH")
  if env and os.path.isfile(env):
    return env
  spec = importlib.util.find_spec("libtpu")
  if spec is not None and spec.submodule_search_locations:
    path = os.path.join(spec.submodule_search_locations[0], "libtpu.so")
    if os.path.isfile(path):
      return path
  path = os.path.join(sys.prefix, "libtpu", "libtpu", "libtpu.so")
  return path if os.path.isfile(path) else None


@contextlib.contextmanager
def libtpu_env():
  """Points jax at libtpu while the TPU plugin loads; yields its path.

  TPU_SKIP_MDS_QUERY stops libtpu from waiting for a GCE metadata server;
  TPU_LIBRARY_PATH names the library. They matter only while the plugin
  loads and initialises (`devices`), so they are restored afterwards: a
  later subprocess of this process (grain workers, tests) must not see a
  TPU library and try a TPU backend.
  """
  path = libtpu_path()
  if path is None:
    raise TopologyError(
        "libtpu not found: run scripts/setup_env.sh (installs it into "
        "<venv>/libtpu), `pip install 'jax[tpu]'`, or set TPU_LIBRARY_PATH.")
  env = {"TPU_SKIP_MDS_QUERY": "1", "TPU_LIBRARY_PATH": path,
         # libtpu otherwise takes /tmp/libtpu_lockfile, and a second
         # compiling process (a test beside a sweep) aborts; compile-only
         # devices never touch a chip, so the lock guards nothing here.
         "ALLOW_MULTIPLE_LIBTPU_LOAD": "1"}
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)
  try:
    yield path
  finally:
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v


def devices(topology: Topology) -> list:
  """The compile-only devices of `topology` (slice-major order)."""
  from jax.experimental import topologies

  with libtpu_env():
    desc = topologies.get_topology_desc(
        platform="tpu",
        topology_name=f"{topology.chip.name}:{topology.shape}",
        chip_config_name="default", chips_per_host_bounds=(2, 2, 1),
        num_slices=topology.num_slices)
  devs = list(desc.devices)
  if len(devs) != topology.num_chips:
    raise TopologyError(
        f"{topology.name}: libtpu gave {len(devs)} devices, expected "
        f"{topology.num_chips}")
  if devs[0].device_kind != topology.chip.device_kind:
    raise TopologyError(
        f"{topology.name}: device kind {devs[0].device_kind!r}, expected "
        f"{topology.chip.device_kind!r}")
  return devs
