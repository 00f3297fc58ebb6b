"""Concurrent real-time streams of the temporal sampler on a TPU chip, from
the compiled program (no TPU needed; libtpu compiles on this CPU).

  python scripts/bench_temporal_tpu.py --topology v5e-4 \
      --streams 256,2048,16384 [--variant base|released] [--out DIR]

One steady-state chunk of the streaming sampler (`jaxpain.bench.chunk`:
ours `sampler._chunk`, or the released network's `_window`; the whole
pyramid of denoiser evaluations in `lax.scan`, guidance branches
batched, context carried) is compiled for a TPU topology with the streams
split over its chips (streams are independent: no collective). From the
compiled program, per chip (jaxpain.aot's reading of the HLO):

  HBM        arguments + outputs + temporaries against the chip's HBM
  FLOPs      XLA's count plus the scan iterations it counts once
  bytes      HBM traffic of every instruction, loop bodies x trips
  t_chunk    roofline: max(FLOPs / peak bf16, bytes / HBM bandwidth)
  streams    real-time streams per chip = streams x chunk seconds /
             t_chunk (one chunk emits H x fs frames at 25 fps)

The roofline is an upper bound: it leaves out per-kernel launch time,
which dominates at small batches, where one chunk is 27 (ours) or 55
(released) dependent evaluations of a small network. So the figure that matters is the one at
a batch where the chunk is compute-bound; smaller batches are shown to
make that visible. No TPU ran anything.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxpain.bench import chunk as chunk_lib
from jaxpain.temporal import sampler
from synth import sequences as sq


def _abstract(tree, sharding):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
      tree)


def build(variant: str, dtype: str | None = None) -> chunk_lib.Chunk:
  """The chunk of `variant` (random weights: speed does not depend on
  them); ours in `dtype` (None: bfloat16), the released one in float32."""
  if dtype is None and variant not in chunk_lib.RELEASED:
    dtype = "bfloat16"
  return chunk_lib.of(*chunk_lib.build(variant, dtype), variant)


def compile_chunk(chunk: chunk_lib.Chunk, devices, streams: int):
  """Lowers and compiles one steady chunk for `streams` streams split over
  `devices`; returns (compiled, seconds to compile)."""
  mesh = Mesh(np.asarray(devices), ("data",))
  rep, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
  key = jax.eval_shape(lambda: jax.random.key(0, impl=sampler.KEY_IMPL))
  t0 = time.perf_counter()
  lowered = chunk.lower(
      _abstract(chunk.state, rep), _abstract(chunk.specs(streams), rows),
      jax.ShapeDtypeStruct((3,), jnp.float32, sharding=rep),
      jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=rep))
  compiled = lowered.compile()
  return compiled, time.perf_counter() - t0


def analyse(compiled, chip, streams_per_chip: int, chunk_seconds: float
            ) -> dict:
  """Per-chip figures of one compiled chunk (module docstring)."""
  from jaxpain.aot import analysis, hlo

  mem = analysis.memory(compiled, chip)
  module = hlo.parse(compiled.as_text())
  extra = analysis.loop_extra(module)
  flops = analysis.cost(compiled)["flops"] + extra["flops"]
  nbytes = extra["hbm_bytes"]
  t_flops, t_bytes = flops / chip.peak_bf16, nbytes / chip.hbm_bw
  t_chunk = max(t_flops, t_bytes)
  return {"streams_per_chip": streams_per_chip, "fits": mem["peak"] <=
          mem["hbm"], "hbm_gib": mem["peak"] / 2**30,
          "hbm_fraction": mem["fraction"], "flops": flops,
          "hbm_bytes": nbytes, "loops": extra["loops"],
          "t_flops_s": t_flops, "t_bytes_s": t_bytes,
          "t_chunk_s": t_chunk,
          "bound": "compute" if t_flops >= t_bytes else "memory",
          "realtime_streams_per_chip": streams_per_chip * chunk_seconds
          / t_chunk if t_chunk > 0 else None}


def run(topology: str, streams: list[int], variant: str = "base",
        dtype: str | None = None, progress: bool = False) -> dict:
  """Compiles and analyses one chunk per entry of `streams` (per chip)."""
  from jaxpain.aot import chips
  from jaxpain.aot import compile as aot_compile

  topo = chips.get(topology)
  devices = chips.devices(topo)
  ch = build(variant, dtype)
  chunk_seconds = ch.new_frames / sq.FPS
  rows = []
  for per_chip in streams:
    if progress:
      print(f"compiling {variant} for {topology}, {per_chip:,} streams "
            "per chip", flush=True)
    try:
      compiled, secs = compile_chunk(ch, devices, per_chip * topo.num_chips)
    except jax.errors.JaxRuntimeError as e:
      if "RESOURCE_EXHAUSTED" not in str(e):
        raise
      # libtpu refuses a program whose temporaries exceed the chip's HBM.
      rows.append({"streams_per_chip": per_chip, "fits": False,
                   "error": str(e).splitlines()[0].split(": ", 1)[-1]})
      continue
    rows.append(analyse(compiled, topo.chip, per_chip, chunk_seconds)
                | {"compile_s": secs})
  return {"topology": topology, "chip": topo.chip.name,
          "chips": topo.num_chips, "variant": variant, "dtype": ch.dtype,
          "parameters": ch.parameters, "window": ch.window,
          "evaluations_per_chunk": ch.evaluations,
          "guidance_branches": ch.branches,
          "frames_per_chunk": ch.new_frames, "chunk_seconds": chunk_seconds,
          "rows": rows, "versions": aot_compile.versions()}


def table(res: dict) -> str:
  """The docs/benchmarks.md table of `run`'s result."""
  lines = ["| streams per chip | HBM (GiB) | TFLOP per chunk | bound | "
           "roofline chunk (ms) | real-time streams per chip |",
           "|---|---|---|---|---|---|"]
  for r in res["rows"]:
    if "error" in r:
      lines.append(f"| {r['streams_per_chip']:,} | does not fit: "
                   f"{r['error']} | | | | |")
      continue
    lines.append(
        f"| {r['streams_per_chip']:,} | {r['hbm_gib']:.2f} | "
        f"{r['flops'] / 1e12:.3f} | {r['bound']} | "
        f"{r['t_chunk_s'] * 1e3:.2f} | "
        f"{r['realtime_streams_per_chip']:,.0f} |")
  return "\n".join(lines)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--topology", default="v5e-4")
  p.add_argument("--streams", default="256,2048,16384",
                 help="streams per chip, comma-separated")
  p.add_argument("--variant", default="base",
                 help=f"one of {', '.join(chunk_lib.variants())}")
  p.add_argument("--dtype", default=None,
                 help="ours: bfloat16 (default) or float32; released: "
                 "float32 only")
  p.add_argument("--out", default="runs/bench_temporal_tpu")
  a = p.parse_args(argv)
  from jaxpain.aot import chips

  try:
    streams = [int(s) for s in a.streams.split(",")]
    if min(streams) < 1:
      raise ValueError(f"--streams must be positive integers, got {a.streams}")
    res = run(a.topology, streams, a.variant, a.dtype, progress=True)
  except (chips.TopologyError, ValueError, KeyError) as e:
    p.exit(2, f"error: {e}\n")
  os.makedirs(a.out, exist_ok=True)
  path = os.path.join(a.out, f"temporal_tpu_{a.topology}_{a.variant}.json")
  with open(path, "w") as f:
    json.dump(res, f, indent=2, default=str)
  print(table(res))
  print(f"wrote {path}")
  return res
