"""The JAX side of the train benchmark: what users run, on one device.

`jaxpain.train.state.create` and `jaxpain.train.steps.make_train_step` /
`make_eval_step` (two-group AdamW, clipping, donation, metrics kept on
device), built from the trainer's own config with the benchmark's variant,
batch and overrides. Runs inside a `workers` process.
"""

from __future__ import annotations

import os

from jaxpain.bench import context, profiling, stats
from jaxpain.bench.sides import flag


class JaxSide:
  """jaxpain's own state, train step and eval step on one device."""

  def __init__(self, a, over: dict):
    import jax

    from jaxpain import sharding as shd
    from jaxpain.train import config as config_lib
    from jaxpain.train import state as state_lib
    self.a, self.jax, self.shd = a, jax, shd
    try:
      self.dev = jax.devices('gpu' if a.device == 'gpu' else 'cpu')[0]
    except RuntimeError as e:
      raise SystemExit(f'--device {a.device}: JAX sees none ({e})') from e
    c = config_lib.base_config()
    m, dtype = c.model, over.get('dtype', a.resolved_dtype)
    m.variant, m.image_size, m.lora_rank = a.variant, a.image_size, a.lora_rank
    m.use_neutral, m.official_compat = not a.no_neutral, not a.dinov3
    m.dtype = dtype
    m.attention_impl = context.attention_impl(
      a.device, over.get('attention', a.attention), dtype)
    m.shared_base = flag(over, 'shared_base', not a.no_shared_base)
    m.remat = flag(over, 'remat', a.remat)
    m.scan_blocks = flag(over, 'scan', True)
    c.dropout_prng = over.get('prng', a.prng)
    c.batch_size = c.eval_batch_size = a.batch
    c.mesh.shape = (1, 1, 1)
    self.cfg = c
    self.mesh = shd.create_mesh((1, 1, 1), c.mesh.axes, devices=[self.dev])
    # create() enters the mesh itself (an outer mesh breaks nnx.eval_shape).
    self.setup = state_lib.create(c, self.mesh, total_steps=100_000)
    self._ctx = shd.mesh_context(self.mesh, self.setup.parts.rules)  # kept
    self.batch_sh = shd.batch_sharding(self.mesh, c.batch_axes)
    self._fns: dict = {}
    self._steps: dict = {}

  def info(self) -> dict:
    c = self.cfg
    m = c.model
    return {'framework': 'jax', 'device': self.dev.device_kind,
            'platform': self.dev.platform, 'dtype': m.dtype,
            'shared_base': m.shared_base, 'remat': m.remat,
            'scan_blocks': m.scan_blocks,
            'attention': m.attention_impl, 'dropout_prng': c.dropout_prng,
            'xla_flags': os.environ.get('XLA_FLAGS', ''),
            'glibc_tunables': os.environ.get('GLIBC_TUNABLES'),
            'threads': len(os.sched_getaffinity(0))}

  def peak(self) -> float:
    """FLOP/s of the best of 5 square GEMMs (bf16 on GPU, fp32 on CPU)."""
    jnp = self.jax.numpy
    n, dt = (self.a.peak_gemm, jnp.bfloat16 if self.a.device == 'gpu' else
             jnp.float32)
    x = self.jax.device_put(jnp.ones((n, n), dt), self.dev)
    f = self.jax.jit(lambda x: x @ x)
    f(x).block_until_ready()
    best = min(w for w, _ in stats.timed(
      lambda: f(x).block_until_ready(), 5))
    return stats.rate(2 * n ** 3, best)

  def memory(self) -> dict:
    dev_stats = self.dev.memory_stats() or {}
    return {'peak_rss_bytes': context.peak_rss(),
            'device_peak_bytes': dev_stats.get('peak_bytes_in_use')}

  def _batch(self):
    import numpy as np
    rng, b, s = np.random.default_rng(0), self.a.batch, self.a.image_size
    host = {'image': rng.integers(0, 256, (b, s, s, 3), np.uint8),
            'pspi': rng.uniform(0, 16, b).astype(np.float32),
            'au': rng.integers(0, 6, (b, 6)).astype(np.float32),
            'mask': np.ones(b, np.float32)}
    if not self.a.no_neutral:
      host['neutral'] = rng.integers(0, 256, (b, s, s, 3), np.uint8)
    return self.shd.to_global(host, self.batch_sh, b)

  def _train_fn(self, augment: bool):
    """The trainer's jitted step, with or without on-device augmentation."""
    import ml_collections

    from jaxpain.train import steps as steps_lib
    if augment not in self._steps:
      c = ml_collections.ConfigDict(self.cfg.to_dict())
      c.augment.enabled = augment
      self._steps[augment] = steps_lib.make_train_step(c, self.setup,
                                                       self.mesh)
    return self._steps[augment]

  def _loader(self):
    from jaxpain.data import pipeline, sources
    a = self.a
    src = sources.open_source(a.data_name, 'train', a.data_dir_resolved)
    index = sources.split_index(src, a.data_name, 'train',
                                a.data_dir_resolved)
    fields = ('image',) if a.no_neutral else ('image', 'neutral')
    spec = pipeline.InputSpec(fields=fields, neutral_mode='random_view')
    ds = pipeline.train_dataset(src, index, spec, a.batch, self.batch_sh,
                                a.workers, a.prefetch)
    return pipeline.GlobalBatches(ds, self.batch_sh, a.batch)

  def _make(self, phase: str):
    """One-step closure of `phase` (blocks until the device is done)."""
    jax, s = self.jax, self.setup
    if phase == 'eval':
      from jaxpain.train import steps as steps_lib
      ev = steps_lib.make_eval_step(self.cfg, s, self.mesh)
      batch = self._batch()
      return lambda: jax.block_until_ready(
        ev(s.train['params'], s.consts, batch))
    step = self._train_fn(augment=phase == 'e2e' and not self.a.no_augment)
    batches = self._loader() if phase == 'e2e' else None
    fixed = self._batch() if phase == 'train' else None

    def one():
      batch = fixed if batches is None else next(batches)
      s.train, metrics = step(s.train, s.consts, None, batch)
      jax.block_until_ready((s.train, metrics))
    return one

  def run(self, phase: str, n: int) -> list[stats.Step]:
    """(wall s, CPU s) of n steps of `phase`."""
    if phase not in self._fns:
      self._fns[phase] = self._make(phase)
    return stats.timed(self._fns[phase], n)

  def profile(self, phase: str, n: int, out_dir: str) -> dict:
    """Per-op times of `n` steps from a jax.profiler (perfetto) trace."""
    path = os.path.join(out_dir, 'jax_trace')
    self.jax.profiler.start_trace(path, create_perfetto_trace=True)
    self.run(phase, n)
    self.jax.profiler.stop_trace()
    return profiling.op_summary(profiling.jax_trace_ops(path), n)
