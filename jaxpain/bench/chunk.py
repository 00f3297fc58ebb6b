"""One steady-state chunk of a streaming sampler, whatever the network:
what the temporal benchmarks time on the CPU (`jaxpain.bench.temporal`)
and compile for a TPU (`jaxpain.bench.temporal_tpu`).

Two networks stream with our sampler (`sampler.sample_window`):

  ours      the AU-space `PainDenoiser` (`sampler._chunk`: conditions
            normalised inside, a stimulus look-back carried, AU frames
            out); variants `model.VARIANTS`.
  released  the authors' FLAME-space U-Net (`released.stream._window`:
            raw conditions, one window of stimulus in, W tokens out);
            variants `RELEASED`, random weights (speed does not depend
            on them and nothing is downloaded).

Both jitted functions take

  (graphdef, state, static sampler config, mode, *per-stream arguments,
   guidance weights (3,), key)

so a `Chunk` holds the function, its static arguments and the shapes of
its per-stream arguments (batch leading); a benchmark builds concrete
inputs for a timing loop (`inputs`, `Chunk.advance` carries the context)
or abstract, sharded ones for a compile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxpain.temporal import model, sampler, schedule, tokens
from jaxpain.temporal.released import stream as released_stream
from jaxpain.temporal.released.unet import ReleasedConfig, ReleasedDenoiser

# The released network's sizes. 'released' is the default `ReleasedConfig`,
# the real-time model of `scale_jawpose_window_32.yml` (window 8 tokens,
# C = 2, fs 4; reference.md §G.2-G.3); 'released-tiny' is for tests.
RELEASED = {
    "released": ReleasedConfig(),
    "released-tiny": ReleasedConfig(dim=8, dim_mults=(1, 2), attn_heads=2,
                                    attn_dim_head=8, context_dim=16,
                                    latent_width=16),
}


@dataclasses.dataclass(frozen=True)
class Chunk:
  """A jitted chunk function and what is needed to call or lower it."""

  variant: str
  fn: Callable[..., Any]  # jitted: (graphdef, state, static, mode, ...)
  graphdef: Any
  state: Any
  static: sampler.SamplerConfig  # guidance None or (): weights are traced
  mode: Any  # `first` (False) for ours, the context C for the released
  specs: Callable[[int], tuple]  # B -> per-stream ShapeDtypeStructs
  advance: Callable[[Any, tuple], tuple]  # (output, args) -> next args
  weights: jax.Array
  parameters: int
  dtype: str
  window: int
  context: int
  new_frames: int  # frames emitted per chunk
  evaluations: int  # denoiser evaluations per chunk (scan rows)
  branches: int  # guidance branches per evaluation

  def __call__(self, args: tuple, key):
    return self.fn(self.graphdef, self.state, self.static, self.mode,
                   *args, self.weights, key)

  def lower(self, state, args: tuple, weights, key):
    """`fn.lower` with abstract (or concrete) state and arguments."""
    return self.fn.lower(self.graphdef, state, self.static, self.mode,
                         *args, weights, key)


def variants() -> list[str]:
  return sorted(model.VARIANTS) + sorted(RELEASED)


def build(variant: str, dtype: str | None = None):
  """(network with random weights, sampler config) of `variant`.

  Args:
    variant: a `variants()` name.
    dtype: compute dtype of our model (None: configs/temporal.py's); the
      released port computes in float32 only.

  Raises:
    ValueError: an unknown variant, or a dtype the variant cannot use.
  """
  if variant in RELEASED:
    if dtype not in (None, "float32"):
      raise ValueError(f"the released port computes in float32 only, not "
                       f"{dtype}: leave --dtype out")
    net = ReleasedDenoiser(RELEASED[variant], rngs=nnx.Rngs(0))
    return net, released_stream.sampler_config(net)
  if variant not in model.VARIANTS:
    raise ValueError(f"unknown variant {variant!r}: one of "
                     f"{', '.join(variants())}")
  from jaxpain.temporal import config as config_lib

  c = config_lib.base_config()
  c.model.variant = variant
  if dtype is not None:
    c.model.dtype = dtype
  cfg = model.TemporalConfig.from_dict(c.model.to_dict())
  net = model.create(cfg, tokens.Normaliser.identity(cfg.num_aus))
  return net, sampler.SamplerConfig.from_dict(c.sampler.to_dict())


def of(net, scfg: sampler.SamplerConfig, variant: str | None = None
       ) -> Chunk:
  """The steady chunk of `net` (ours or released) under `scfg`."""
  cfg = net.cfg
  fs, c, w = cfg.frames_per_token, scfg.context, cfg.window
  f32, feat = jnp.float32, cfg.token_features
  sds = jax.ShapeDtypeStruct
  graphdef, state = nnx.split(net)
  if isinstance(net, ReleasedDenoiser):
    fn, mode = released_stream._window, c  # pylint: disable=protected-access
    variant = variant or "released"
    dtype = "float32"

    def specs(b):
      return (sds((b, c, feat), f32), sds((b, w * fs), f32),
              sds((b,), f32), sds((b,), f32))

    def advance(out, args):
      return (out[:, w - c:], *args[1:])
  else:
    fn, mode = sampler._chunk, False  # pylint: disable=protected-access
    variant = variant or cfg.variant
    dtype = cfg.dtype
    keep = (cfg.stim_history + c) * fs

    def specs(b):
      return ({"context": sds((b, c, feat), f32), "stim": sds((b, keep), f32)},
              sds((b, (w - c) * fs), f32), sds((b,), f32),
              sds((b,), jnp.int32))

    def advance(out, args):
      return (out[0], *args[1:])
  return Chunk(
      variant=variant, fn=fn, graphdef=graphdef, state=state,
      static=dataclasses.replace(
          scfg, guidance=None if scfg.guidance is None else ()),
      mode=mode, specs=specs, advance=advance,
      weights=jnp.asarray(scfg.guidance or (0.0, 0.0, 0.0), f32),
      parameters=model.num_params(net), dtype=str(dtype), window=w,
      context=c, new_frames=(w - c) * fs,
      evaluations=schedule.num_steps(scfg.num_levels, w - c,
                                     scfg.uncertainty),
      branches=1 if scfg.guidance is None else len(model.SIGNALS) + 1)


def inputs(chunk: Chunk, batch: int, seed: int = 0) -> tuple:
  """Random per-stream arguments for `batch` streams (values in [0, 1),
  integers 0..4: speed does not depend on them)."""
  rng = np.random.default_rng(seed)

  def draw(s):
    if jnp.issubdtype(s.dtype, jnp.integer):
      return jnp.asarray(rng.integers(0, 5, s.shape), s.dtype)
    return jnp.asarray(rng.uniform(0, 1, s.shape), s.dtype)

  return jax.tree.map(draw, chunk.specs(batch))
