"""Concurrent real-time streams of the temporal sampler on a TPU chip, from
the compiled program (no TPU needed; libtpu compiles on this CPU).

  python scripts/bench_temporal_tpu.py --topology v5e-4 \
      --streams 256,2048,16384 [--variant base] [--out DIR]

One steady-state chunk of the streaming sampler (`sampler._chunk`: the
whole pyramid of denoiser evaluations in `lax.scan`, guidance branches
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
which dominates at small batches, where one chunk is 27 dependent
evaluations of a small network. So the figure that matters is the one at
a batch where the chunk is compute-bound; smaller batches are shown to
make that visible. No TPU ran anything.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxpain.temporal import config as config_lib
from jaxpain.temporal import model, sampler, schedule, tokens
from synth import sequences as sq


def _abstract(tree, sharding):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
      tree)


def build(variant: str, dtype: str):
  """The model (random weights: speed does not depend on them) and the
  sampler settings of configs/temporal.py."""
  c = config_lib.base_config()
  c.model.variant, c.model.dtype = variant, dtype
  cfg = model.TemporalConfig.from_dict(c.model.to_dict())
  net = model.create(cfg, tokens.Normaliser.identity(cfg.num_aus))
  return net, sampler.SamplerConfig.from_dict(c.sampler.to_dict())


def compile_chunk(net, scfg: sampler.SamplerConfig, devices, streams: int):
  """Lowers and compiles one steady chunk for `streams` streams split over
  `devices`; returns (compiled, seconds to compile)."""
  mesh = Mesh(np.asarray(devices), ("data",))
  rep, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
  cfg = net.cfg
  fs, c = cfg.frames_per_token, scfg.context
  keep = (cfg.stim_history + c) * fs
  new = (cfg.window - c) * fs
  f32 = jnp.float32
  sds = lambda shape, dt=f32, sh=rows: jax.ShapeDtypeStruct(shape, dt,
                                                            sharding=sh)
  graphdef, state = nnx.split(net)
  carry = {"context": sds((streams, c, cfg.token_features)),
           "stim": sds((streams, keep))}
  key = jax.eval_shape(lambda: jax.random.key(0, impl=sampler.KEY_IMPL))
  static = dataclasses.replace(
      scfg, guidance=None if scfg.guidance is None else ())
  t0 = time.perf_counter()
  lowered = sampler._chunk.lower(  # pylint: disable=protected-access
      graphdef, _abstract(state, rep), static, False, carry,
      sds((streams, new)), sds((streams,)), sds((streams,), jnp.int32),
      sds((3,), sh=rep), jax.ShapeDtypeStruct(key.shape, key.dtype,
                                              sharding=rep))
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
        dtype: str = "bfloat16") -> dict:
  """Compiles and analyses one chunk per entry of `streams` (per chip)."""
  from jaxpain.aot import chips
  from jaxpain.aot import compile as aot_compile

  topo = chips.get(topology)
  devices = chips.devices(topo)
  net, scfg = build(variant, dtype)
  cfg = net.cfg
  new = (cfg.window - scfg.context) * cfg.frames_per_token
  chunk_seconds = new / sq.FPS
  rows = []
  for per_chip in streams:
    compiled, secs = compile_chunk(net, scfg, devices,
                                   per_chip * topo.num_chips)
    rows.append(analyse(compiled, topo.chip, per_chip, chunk_seconds)
                | {"compile_s": secs})
  return {"topology": topology, "chip": topo.chip.name,
          "chips": topo.num_chips, "variant": variant, "dtype": dtype,
          "parameters": model.num_params(net),
          "evaluations_per_chunk": schedule.num_steps(
              scfg.num_levels, cfg.window - scfg.context,
              scfg.uncertainty),
          "guidance_branches": 1 if scfg.guidance is None else 4,
          "frames_per_chunk": new, "chunk_seconds": chunk_seconds,
          "rows": rows, "versions": aot_compile.versions()}


def table(res: dict) -> str:
  """The docs/benchmarks.md table of `run`'s result."""
  lines = ["| streams per chip | HBM (GiB) | TFLOP per chunk | bound | "
           "roofline chunk (ms) | real-time streams per chip |",
           "|---|---|---|---|---|---|"]
  for r in res["rows"]:
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
  p.add_argument("--variant", default="base")
  p.add_argument("--dtype", default="bfloat16")
  p.add_argument("--out", default="runs/bench_temporal_tpu")
  a = p.parse_args(argv)
  from jaxpain.aot import chips

  try:
    streams = [int(s) for s in a.streams.split(",")]
    if min(streams) < 1:
      raise ValueError(f"--streams must be positive integers, got {a.streams}")
    res = run(a.topology, streams, a.variant, a.dtype)
  except (chips.TopologyError, ValueError, KeyError) as e:
    p.exit(2, f"error: {e}\n")
  os.makedirs(a.out, exist_ok=True)
  path = os.path.join(a.out, f"temporal_tpu_{a.topology}_{a.variant}.json")
  with open(path, "w") as f:
    json.dump(res, f, indent=2, default=str)
  print(table(res))
  print(f"wrote {path}")
  return res
