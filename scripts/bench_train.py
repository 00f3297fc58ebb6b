"""ViTPain training throughput: jaxpain (JAX) against the PyTorch baseline.

Both sides train the same configuration (variant, batch, resolution, LoRA
rank, neutral reference) on the same device, in one run, ALTERNATING: each
phase runs in rounds of K steps per side, the side order flipping every
round, so load from other processes and thermal drift hit both alike. Each
side lives in its own worker process, so its peak memory is its own.

Phases (performance.md §6):
  train  model-only: device-resident batches, median step time.
  e2e    end-to-end: the real input pipeline. JAX: grain over
         `tfds.data_source` (host decode) + on-device augmentation inside
         the jitted step. PyTorch: a DataLoader doing the released CPU-side
         torchvision transforms on the same decoded records.
  eval   forward only (pairs/s).

JAX runs what users run: `jaxpain.train.state.create` and
`jaxpain.train.steps.make_train_step/make_eval_step` (two-group AdamW,
clipping, donation, metrics kept on device). PyTorch runs
`jaxpain.baselines.torch_vitpain` (timm DINOv3 + peft) with the released
recipe: eager, two-group AdamW, global-norm clipping 1.0, autocast (fp16 +
GradScaler on CUDA, as released), and the released per-step host sync.

Sides can carry overrides to measure single levers in the same run, e.g.
`--sides jax,torch,jax+shared_base=0,jax+dtype=bfloat16,jax+remat=1,jax+scan=0`.

  python scripts/bench_train.py --variant S/16 --batch 8 --steps 50 \\
      --out bench.json
  python scripts/bench_train.py --device gpu --variant L/16 --batch 128

Output: a Markdown table on stdout and a JSON file (--out). See
docs/benchmarks.md for results and how to read them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PHASES = ('train', 'e2e', 'eval')
MIN_STEPS = 50
# bf16/fp16 dense peaks (FLOP/s), performance.md §4 (A1-A3); else measured.
GPU_PEAKS = (('H100 PCIe', 756e12), ('H100', 989.4e12), ('H200', 989.4e12),
             ('L40S', 362e12), ('A100', 312e12))
SIDE_KEYS = {'jax': ('dtype', 'shared_base', 'remat', 'attention', 'scan'),
             'torch': ('amp',)}


# ------------------------------------------------------------ FLOPs ------


def flops_per_pair(variant: str, image_size: int, lora_rank: int,
                   neutral: bool, dinov3: bool = False,
                   train: bool = True) -> float:
  """Model FLOPs per sample (one pain image + its neutral reference).

  Counted by `jaxpain.models.flops` (performance.md §3): GEMMs, attention
  core, LoRA and heads; the frozen base needs activation gradients only.
  `dinov3` selects the N = 201 token path (RoPE + registers).
  """
  from jaxpain.models import flops, vitpain
  cfg = vitpain.ViTPainConfig(variant=variant, image_size=image_size,
                              lora_rank=lora_rank, use_neutral=neutral,
                              official_compat=not dinov3)
  cost = flops.backbone(cfg).scale(2 if neutral else 1)
  cost = cost + flops.heads_cost(cfg, neutral)
  return cost.forward + (cost.backward if train else 0.0)


# ------------------------------------------------------------ data -------


def prepare_fixture(data_dir: str, size: int, identities: int) -> str:
  """Builds `3dpain/official` from a fake release (cached); its data_dir.

  The fake release (tfds_3dpain.testing) has the released layout: q90 JPEG
  faces (random pixels, so larger and slower to decode than real faces),
  JSON labels and a split CSV, imported by the real builder to ArrayRecord.
  """
  import tensorflow_datasets as tfds

  import tfds_3dpain  # noqa: F401  (registers 3dpain)
  from tfds_3dpain import testing
  root = os.path.join(data_dir, f'fixture_{size}px_{identities}ids')
  builder = tfds.builder('3dpain/official', data_dir=os.path.join(root, 'd'))
  if not builder.is_prepared():
    manual = os.path.join(root, 'manual')
    if not os.path.isdir(manual):
      testing.write_official_fixture(
        manual + '.tmp', csv_splits=(0,) * identities + (1, 2), size=size,
        heatmaps=False)
      os.replace(manual + '.tmp', manual)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual))
  return os.path.join(root, 'd')


# ------------------------------------------------------------ context ----


def cpu_info() -> dict:
  info = {'model': platform.processor() or '?', 'cores': os.cpu_count()}
  try:
    out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    for line in out.splitlines():
      k, _, v = line.partition(':')
      if k.strip() == 'Model name':
        info['model'] = v.strip()
  except OSError:
    pass
  with open('/proc/cpuinfo') as f:
    flags = f.read()
  info['native_bf16'] = 'avx512_bf16' in flags or 'amx_bf16' in flags
  return info


def versions() -> dict:
  from importlib import metadata
  out = {}
  for name in ('jax', 'jaxlib', 'flax', 'optax', 'grain', 'torch', 'timm',
               'peft', 'torchvision', 'tensorflow-datasets'):
    try:
      out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      out[name] = None
  return out


def resolve_dtype(a) -> str:
  """'auto': bf16 on GPU and on CPUs with native bf16, else float32.

  torch's bf16 GEMMs on CPUs without avx512_bf16/AMX fall back to a slow
  path (measured here: 0.26 vs 4.5 GFLOP/s), so a fair CPU comparison there
  is float32 on both sides.
  """
  if a.dtype != 'auto':
    return a.dtype
  if a.device == 'gpu' or cpu_info()['native_bf16']:
    return 'bfloat16'
  return 'float32'


def parse_side(spec: str) -> tuple[str, dict]:
  """'jax+dtype=bfloat16+remat=1' -> ('jax', {'dtype': ..., 'remat': ...})."""
  kind, *parts = spec.split('+')
  if kind not in SIDE_KEYS:
    raise SystemExit(f'--sides: unknown side {kind!r} in {spec!r}; use '
                     f'jax or torch, e.g. jax+shared_base=0')
  over = {}
  for part in parts:
    k, eq, v = part.partition('=')
    if not eq or k not in SIDE_KEYS[kind]:
      raise SystemExit(f'--sides: bad override {part!r} in {spec!r}; '
                       f'{kind} accepts {SIDE_KEYS[kind]} as key=value')
    over[k] = v
  return kind, over


# ------------------------------------------------------------ workers ----


def _worker(spec: str, a, conn) -> None:
  """Worker process body: one side, driven by (command, args) messages."""
  import traceback
  try:
    cpus = sorted(os.sched_getaffinity(0))[:a.threads]
    os.sched_setaffinity(0, cpus)  # XLA sizes its pool from the affinity
    os.environ['OMP_NUM_THREADS'] = str(len(cpus))
    os.environ['XLA_PYTHON_CLIENT_PREALLOCATE'] = 'false'  # share the GPU
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    if a.fast_compile:  # smoke tests only: timings become meaningless
      os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + (
        ' --xla_backend_optimization_level=0'
        ' --xla_llvm_disable_expensive_passes=true'))
    if a.device == 'cpu':
      os.environ['JAX_PLATFORMS'] = 'cpu'
      os.environ['CUDA_VISIBLE_DEVICES'] = ''
    import absl.flags
    absl.flags.FLAGS.mark_as_parsed()  # grain reads absl flags
    kind, over = parse_side(spec)
    side = (TorchSide if kind == 'torch' else JaxSide)(a, over)
    conn.send(('ok', side.info()))
    while True:
      cmd, arg = conn.recv()
      if cmd == 'quit':
        break
      conn.send(('ok', getattr(side, cmd)(*arg)))
  except BaseException:  # noqa: BLE001  (reported to the parent)
    conn.send(('error', traceback.format_exc()))


class Worker:
  """Parent-side handle of one side's process."""

  def __init__(self, ctx, spec: str, a):
    self.spec = spec
    self.conn, child = ctx.Pipe()
    self.proc = ctx.Process(target=_worker, args=(spec, a, child),
                            daemon=False)  # loaders spawn their own workers
    self.proc.start()

  def result(self):
    status, value = self.conn.recv()
    if status == 'error':
      raise RuntimeError(f'side {self.spec!r} failed:\n{value}')
    return value

  def call(self, cmd: str, *arg):
    self.conn.send((cmd, arg))
    return self.result()

  def close(self):
    try:
      self.conn.send(('quit', ()))
    except OSError:
      pass
    self.proc.join(timeout=60)


def _timed(fn, n: int) -> list[tuple[float, float]]:
  """(wall s, process CPU s) of each of n calls.

  CPU time (all threads of this process) is the cross-check on a shared
  machine: it counts the work done, not the time spent descheduled.
  """
  out = []
  for _ in range(n):
    t, c = time.perf_counter(), time.process_time()
    fn()
    out.append((time.perf_counter() - t, time.process_time() - c))
  return out


def _peak_rss() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _category(name: str) -> str:
  """Coarse op class from an XLA thunk or aten op name."""
  n = name.lower()
  for cat, keys in (('attention', ('attention', 'scaled_dot', 'softmax')),
                    ('rng/dropout', ('rng', 'random', 'threefry', 'dropout',
                                     'bernoulli')),
                    ('gemm', ('dot', 'ynn', 'gemm', 'conv', 'mm', 'linear',
                              'matmul', 'einsum')),
                    ('norm/reduce', ('norm', 'reduce', 'sum', 'mean'))):
    if any(k in n for k in keys):
      return cat
  return 'elementwise/other'


def op_summary(durations: dict, steps: int, top: int = 15) -> dict:
  """Per-step op times (ms) by category and the `top` ops, with shares."""
  total = sum(durations.values()) or 1.0
  cats: dict[str, float] = {}
  for name, us in durations.items():
    cats[_category(name)] = cats.get(_category(name), 0.0) + us
  ops = sorted(durations.items(), key=lambda kv: -kv[1])[:top]
  per = lambda us: {'ms_per_step': us / 1e3 / steps, 'share': us / total}
  return {'categories': {k: per(v) for k, v in sorted(
    cats.items(), key=lambda kv: -kv[1])},
          'top_ops': {k: per(v) for k, v in ops},
          'op_ms_per_step': total / 1e3 / steps}


def _jax_trace_ops(trace_dir: str) -> dict:
  """Summed durations (us) of XLA op events in a perfetto trace."""
  import glob
  import gzip
  path = sorted(glob.glob(os.path.join(
    trace_dir, '**', '*.trace.json.gz'), recursive=True))[-1]
  with gzip.open(path) as f:
    events = json.load(f)
  events = events['traceEvents'] if isinstance(events, dict) else events
  out: dict[str, float] = {}
  for e in events:
    name = e.get('name', '')
    if e.get('ph') != 'X' or name.startswith(('$', 'end: ')) or any(
        k in name for k in ('::', 'Pjit', 'Threadpool', ' ')):
      continue
    out[name] = out.get(name, 0.0) + float(e.get('dur', 0.0))
  return out


def _attention(device: str, attention: str, dtype: str) -> str | None:
  if attention == 'auto':
    return 'cudnn' if device == 'gpu' and dtype != 'float32' else None
  return None if attention == 'none' else attention


def _flag(over: dict, key: str, default: bool) -> bool:
  return over[key] not in ('0', 'false') if key in over else bool(default)


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
    m.attention_impl = _attention(
      a.device, over.get('attention', a.attention), dtype)
    m.shared_base = _flag(over, 'shared_base', not a.no_shared_base)
    m.remat = _flag(over, 'remat', a.remat)
    m.scan_blocks = _flag(over, 'scan', True)
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
    m = self.cfg.model
    return {'framework': 'jax', 'device': self.dev.device_kind,
            'platform': self.dev.platform, 'dtype': m.dtype,
            'shared_base': m.shared_base, 'remat': m.remat,
            'scan_blocks': m.scan_blocks,
            'attention': m.attention_impl,
            'threads': len(os.sched_getaffinity(0))}

  def peak(self) -> float:
    jnp = self.jax.numpy
    n, dt = (self.a.peak_gemm, jnp.bfloat16 if self.a.device == 'gpu' else
             jnp.float32)
    x = self.jax.device_put(jnp.ones((n, n), dt), self.dev)
    f = self.jax.jit(lambda x: x @ x)
    f(x).block_until_ready()
    best = min(w for w, _ in _timed(lambda: f(x).block_until_ready(), 5))
    return 2 * n ** 3 / best

  def memory(self) -> dict:
    stats = self.dev.memory_stats() or {}
    return {'peak_rss_bytes': _peak_rss(),
            'device_peak_bytes': stats.get('peak_bytes_in_use')}

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

  def run(self, phase: str, n: int) -> list[float]:
    if phase not in self._fns:
      self._fns[phase] = self._make(phase)
    return _timed(self._fns[phase], n)

  def profile(self, phase: str, n: int, out_dir: str) -> dict:
    """Per-op times of `n` steps from a jax.profiler (perfetto) trace."""
    path = os.path.join(out_dir, 'jax_trace')
    self.jax.profiler.start_trace(path, create_perfetto_trace=True)
    self.run(phase, n)
    self.jax.profiler.stop_trace()
    return op_summary(_jax_trace_ops(path), n)


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TorchPairs:
  """Map-style dataset: the released CPU-side pipeline on decoded records.

  Pain record + a random neutral view of the same identity (released
  `random_view`), each through the released synthetic-train torchvision
  transforms (reference.md §B.2) with independent draws.
  """

  def __init__(self, a):
    from jaxpain.data import sources
    self.name, self.data_dir = a.data_name, a.data_dir_resolved
    src = sources.open_source(self.name, 'train', self.data_dir)
    index = sources.split_index(src, self.name, 'train', self.data_dir)
    self.examples, self.identity = index.example_records(), index.identity
    self.refs, self.size = index.reference_table(), a.image_size
    self.neutral, self.no_augment = not a.no_neutral, a.no_augment
    self._src = self._tf = None

  def __len__(self) -> int:
    return len(self.examples)

  def _transform(self):
    if self._tf is None:
      import torchvision.transforms as T
      aug = [] if self.no_augment else [
        T.RandomHorizontalFlip(0.3), T.RandomRotation(5, fill=0),
        T.ColorJitter(0.3, 0.3, 0.2, 0.1),
        T.RandomAffine(0, translate=(0.1, 0.1), scale=(0.9, 1.1)),
        T.GaussianBlur(3, sigma=(0.1, 1.0))]
      self._tf = T.Compose([T.Resize((self.size, self.size)), *aug,
                            T.ToTensor(), T.Normalize(MEAN, STD)])
    return self._tf

  def __getitem__(self, i: int):
    import numpy as np
    import torch
    from PIL import Image

    from jaxpain.data import sources
    if self._src is None:  # opened per loader process
      self._src = sources.open_source(self.name, 'train', self.data_dir)
    tf, rid = self._transform(), int(self.examples[i])
    rec = self._src[rid]
    out = [tf(Image.fromarray(rec['image']))]
    if self.neutral:
      refs = self.refs.get(int(self.identity[rid]), ())
      ref = self._src[int(np.random.choice(refs))] if len(refs) else rec
      out.append(tf(Image.fromarray(ref['image'])))
    au = torch.as_tensor(np.asarray(rec['au'], np.float32))
    return (*out, torch.tensor(float(rec['pspi'])), au)


class TorchSide:
  """The PyTorch baseline (timm + peft) with the released recipe."""

  def __init__(self, a, over: dict):
    import torch

    from jaxpain.baselines import torch_vitpain as tv
    self.a, self.torch = a, torch
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    if a.device == 'gpu' and not torch.cuda.is_available():
      raise SystemExit('--device gpu: torch sees no CUDA device')
    self.dev = torch.device('cuda' if a.device == 'gpu' else 'cpu')
    amp = over.get('amp', a.torch_amp)
    if amp == 'auto':
      amp = 'none' if a.resolved_dtype == 'float32' else (
        'fp16' if a.device == 'gpu' else 'bf16')
    self.amp = amp
    self.amp_dtype = {'none': None, 'bf16': torch.bfloat16,
                      'fp16': torch.float16}[amp]
    cfg = tv.TorchViTPainConfig(
      variant=a.variant, lora_rank=a.lora_rank, use_neutral=not a.no_neutral,
      official_compat=not a.dinov3)
    self.model = tv.TorchViTPain(cfg).to(self.dev)
    self.opt = torch.optim.AdamW(
      [{'params': self.model.lora_parameters(), 'lr': 1e-5},
       {'params': self.model.head_parameters(), 'lr': 1e-4}],
      betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    self.params = [p for g in self.opt.param_groups for p in g['params']]
    self.scaler = torch.amp.GradScaler('cuda') if amp == 'fp16' else None
    self._fns: dict = {}

  def info(self) -> dict:
    t = self.torch
    name = t.cuda.get_device_name() if self.dev.type == 'cuda' else 'cpu'
    return {'framework': 'torch', 'device': name, 'platform': self.dev.type,
            'amp': self.amp, 'threads': t.get_num_threads()}

  def peak(self) -> float:
    t = self.torch
    n, dt = (self.a.peak_gemm, t.bfloat16 if self.dev.type == 'cuda' else
             t.float32)
    x = t.ones(n, n, dtype=dt, device=self.dev)
    x @ x
    self._sync()
    best = min(w for w, _ in _timed(lambda: (x @ x, self._sync()), 5))
    return 2 * n ** 3 / best

  def memory(self) -> dict:
    cuda = self.dev.type == 'cuda'
    return {'peak_rss_bytes': _peak_rss(), 'device_peak_bytes':
            self.torch.cuda.max_memory_allocated() if cuda else None}

  def _sync(self):
    if self.dev.type == 'cuda':
      self.torch.cuda.synchronize()

  def _autocast(self):
    return self.torch.autocast(self.dev.type, dtype=self.amp_dtype,
                               enabled=self.amp_dtype is not None)

  def _loss(self, out, pspi, au):
    """The released loss (reference.md §B.2), in float32."""
    F = self.torch.nn.functional
    bce = [F.binary_cross_entropy_with_logits(
      out['binary_logits'][:, i].float(), (pspi >= t).float())
      for i, t in enumerate((1.0, 2.0, 3.0))]
    return (F.mse_loss(out['pspi'].float(), pspi / 16.0)
            + F.mse_loss(out['au'].float(), au) + sum(bce) / 3.0)

  def _train_step(self, x, n, pspi, au):
    clip = self.torch.nn.utils.clip_grad_norm_
    self.opt.zero_grad(set_to_none=True)
    with self._autocast():
      out = self.model(x, n)
    loss = self._loss(out, pspi, au)
    if self.scaler is not None:  # Lightning precision=16
      self.scaler.scale(loss).backward()
      self.scaler.unscale_(self.opt)
      clip(self.params, 1.0)
      self.scaler.step(self.opt)
      self.scaler.update()
    else:
      loss.backward()
      clip(self.params, 1.0)
      self.opt.step()
    out['pspi'].detach().cpu()  # released: metrics update syncs each step
    self._sync()

  def _batch(self):
    t, b, s = self.torch, self.a.batch, self.a.image_size
    g = t.Generator().manual_seed(0)
    x = t.randn(b, 3, s, s, generator=g).to(self.dev)
    n = None if self.a.no_neutral else t.randn(
      b, 3, s, s, generator=g).to(self.dev)
    pspi = (16 * t.rand(b, generator=g)).to(self.dev)
    au = t.randint(0, 6, (b, 6), generator=g).float().to(self.dev)
    return x, n, pspi, au

  def _loader(self):
    a, cuda = self.a, self.dev.type == 'cuda'
    dl = self.torch.utils.data.DataLoader(
      TorchPairs(a), batch_size=a.batch, shuffle=True, drop_last=True,
      num_workers=a.workers, prefetch_factor=a.prefetch if a.workers else None,
      persistent_workers=a.workers > 0, pin_memory=cuda)
    while True:
      yield from dl

  def _make(self, phase: str):
    if phase == 'train':
      batch = self._batch()
      return lambda: self._train_step(*batch)
    if phase == 'eval':
      x, n, _, _ = self._batch()

      def ev():
        with self.torch.inference_mode(), self._autocast():
          self.model(x, n)['pspi'].detach().cpu()
        self._sync()
      return ev
    batches = self._loader()

    def one():
      b = [t.to(self.dev, non_blocking=True) for t in next(batches)]
      x, n = b[0], (None if self.a.no_neutral else b[1])
      self._train_step(x, n, b[-2], b[-1])
    return one

  def run(self, phase: str, n: int) -> list[float]:
    self.model.train(phase != 'eval')
    if phase not in self._fns:
      self._fns[phase] = self._make(phase)
    return _timed(self._fns[phase], n)

  def profile(self, phase: str, n: int, out_dir: str) -> dict:
    """Per-op self times of `n` steps from torch.profiler."""
    prof = self.torch.profiler
    acts = [prof.ProfilerActivity.CPU]
    if self.dev.type == 'cuda':
      acts.append(prof.ProfilerActivity.CUDA)
    with prof.profile(activities=acts) as p:
      self.run(phase, n)
    p.export_chrome_trace(os.path.join(out_dir, 'torch_trace.json'))
    attr = 'self_device_time_total' if self.dev.type == 'cuda' else (
      'self_cpu_time_total')
    return op_summary({e.key: float(getattr(e, attr))
                       for e in p.key_averages()}, n)


# ------------------------------------------------------------ parent -----


def summarize(steps: list, batch: int) -> dict:
  """Median-based rate, spread and CPU time of the timed steps."""
  import numpy as np
  t = np.asarray([w for w, _ in steps])
  cpu = float(np.median([c for _, c in steps]))
  med = float(np.median(t))
  pct = lambda q: 1e3 * float(np.percentile(t, q))
  return {
    'steps': len(t), 'samples_per_s': batch / med,
    'samples_per_s_mean': batch * len(t) / float(t.sum()),
    'step_ms_median': 1e3 * med, 'step_ms_p10': pct(10),
    'step_ms_p90': pct(90), 'cpu_s_per_step_median': cpu,
    'samples_per_cpu_s': batch / cpu}


def _rounds(total: int, rounds: int) -> list[int]:
  k = max(1, min(rounds, total))
  return [total // k + (i < total % k) for i in range(k)]


def _peak(a, infos: dict, measured: dict) -> tuple[float, str]:
  """Device peak used for MFU, and how it was obtained."""
  best = max(measured.values())
  if a.device == 'gpu':
    name = next(i['device'] for i in infos.values())
    for key, value in GPU_PEAKS:
      if key in name:
        return value, f'{key} dense bf16 peak (datasheet, performance.md §4)'
    return best, f'measured bf16 GEMM {a.peak_gemm}^3 (best of the sides)'
  return best, (f'measured fp32 GEMM {a.peak_gemm}^3 on this CPU, best of '
                'JAX and torch, at the start and the end of the run (no '
                'datasheet peak used)')


def run_bench(a) -> dict:
  """Runs every phase, alternating sides; returns the report dict."""
  import multiprocessing as mp
  a.resolved_dtype = resolve_dtype(a)
  a.data_name, a.data_dir_resolved = a.data, a.data_dir
  if 'e2e' in a.phases and a.data == 'fixture':
    a.data_name = '3dpain/official'
    a.data_dir_resolved = prepare_fixture(a.data_dir, a.record_size,
                                          a.identities)
  ctx = mp.get_context('spawn')
  workers = [Worker(ctx, s, a) for s in a.sides]
  report = {'results': {s: {} for s in a.sides}, 'load_avg': {}}
  try:
    infos = {w.spec: w.result() for w in workers}
    measured = {w.spec: [w.call('peak')] for w in workers}
    for phase in a.phases:
      report['load_avg'][phase] = _phase(a, phase, workers, report)
    for w in workers:  # again at the end: the load may have changed
      measured[w.spec].append(w.call('peak'))
    peak, how = _peak(a, infos, {k: max(v) for k, v in measured.items()})
    report.update(sides=infos, peak_flops=peak, peak_source=how,
                  measured_gemm_flops=measured)
    for phases in report['results'].values():
      for r in phases.values():
        r['mfu'] = r['flops_per_sample'] * r['samples_per_s'] / peak
  finally:
    for w in workers:
      w.close()
  _ratios(a, report)
  return report


def _phase(a, phase: str, workers, report: dict) -> list:
  """Warm-up, then alternating rounds; stores each side's summary."""
  n = {'train': a.steps, 'e2e': a.e2e_steps, 'eval': a.eval_steps}[phase]
  # e2e: drop the batches a loader prefetched while the other side ran.
  skip = 0
  if phase == 'e2e':
    skip = a.workers * a.prefetch if a.round_skip < 0 else a.round_skip
  flops = flops_per_pair(a.variant, a.image_size, a.lora_rank,
                         not a.no_neutral, a.dinov3, train=phase != 'eval')
  load = [os.getloadavg()[0]]
  first = {w.spec: w.call('run', phase, a.warmup) for w in workers}
  times: dict[str, list] = {w.spec: [] for w in workers}
  rounds: dict[str, list] = {w.spec: [] for w in workers}
  # Default: one step per round (train, eval), so drifting load from other
  # processes hits both sides alike; e2e needs longer rounds that drain
  # the prefetched batches.
  rounds_n = a.rounds or (5 if phase == 'e2e' else n)
  for r, k in enumerate(_rounds(n, rounds_n)):
    for w in (workers if r % 2 == 0 else workers[::-1]):
      t = w.call('run', phase, k + skip)[skip:]
      times[w.spec] += t
      rounds[w.spec].append(1e3 * sorted(x for x, _ in t)[len(t) // 2])
    print(f'  {phase} round {r + 1}: ' + ', '.join(
      f'{s} {t[-1]:.0f} ms' for s, t in rounds.items()), flush=True)
  load.append(os.getloadavg()[0])
  if a.profile and phase == 'train':
    for w in workers:
      out = os.path.join(a.profile, w.spec.replace('+', '_'))
      os.makedirs(out, exist_ok=True)
      report.setdefault('profile', {})[w.spec] = w.call(
        'profile', phase, a.profile_steps, out)
  for w in workers:
    res = summarize(times[w.spec], a.batch)
    res.update(first_step_s=first[w.spec][0][0], flops_per_sample=flops,
               round_median_ms=rounds[w.spec], **w.call('memory'))
    report['results'][w.spec][phase] = res
  return load


def _ratios(a, report: dict) -> None:
  """samples/s of every side over the first torch side (and first jax)."""
  res = report['results']
  base = next((s for s in a.sides if s.startswith('torch')), None)
  ref = next((s for s in a.sides if s.startswith('jax')), None)
  out = {}
  for phase in a.phases:
    row = {}
    for s in a.sides:
      v = res[s][phase]['samples_per_s']
      if base and s != base:
        row[f'{s} / {base}'] = v / res[base][phase]['samples_per_s']
        per = sorted(b / x for x, b in zip(
          res[s][phase]['round_median_ms'],
          res[base][phase]['round_median_ms'], strict=True))
        row[f'{s} / {base} paired'] = per[len(per) // 2]
        row[f'{s} / {base} paired p10-p90'] = [
          per[int(0.1 * (len(per) - 1))], per[int(0.9 * (len(per) - 1))]]
        row[f'{s} / {base} per CPU-s'] = (
          res[s][phase]['samples_per_cpu_s']
          / res[base][phase]['samples_per_cpu_s'])
      if ref and s != ref and s.startswith('jax'):
        row[f'{s} / {ref}'] = v / res[ref][phase]['samples_per_s']
    out[phase] = row
  report['ratios'] = out


def _mem(r: dict) -> str:
  b = r.get('device_peak_bytes') or r.get('peak_rss_bytes')
  kind = 'dev' if r.get('device_peak_bytes') else 'RSS'
  return f'{b / 2 ** 30:.2f} GiB {kind}'


def _fmt_ratio(v) -> str:
  if isinstance(v, list):
    return '-'.join(f'{x:.2f}x' for x in v)
  return f'{v:.2f}x'


def format_table(rep: dict) -> str:
  """The Markdown tables of a report."""
  lines = ['| side | phase | samples/s | step ms median | p10-p90 ms | steps '
           '| MFU | peak memory | first step s |',
           '|---|---|---|---|---|---|---|---|---|']
  for side, phases in rep['results'].items():
    for phase, r in phases.items():
      lines.append(
        f"| {side} | {phase} | {r['samples_per_s']:.2f} | "
        f"{r['step_ms_median']:.0f} | {r['step_ms_p10']:.0f}-"
        f"{r['step_ms_p90']:.0f} | {r['steps']} | {100 * r['mfu']:.1f}% | "
        f"{_mem(r)} | {r['first_step_s']:.1f} |")
  lines += ['', '| phase | ratio | value |', '|---|---|---|']
  for phase, row in rep['ratios'].items():
    lines += [f'| {phase} | {k} | {_fmt_ratio(v)} |' for k, v in row.items()]
  for side, prof in rep.get('profile', {}).items():
    lines += ['', f"Profile of {side} (train, op time "
              f"{prof['op_ms_per_step']:.0f} ms/step): " + ', '.join(
                f"{k} {100 * v['share']:.0f}%"
                for k, v in prof['categories'].items())]
  lines += ['', f"MFU peak: {rep['peak_flops'] / 1e9:.1f} GFLOP/s "
            f"({rep['peak_source']})."]
  return '\n'.join(lines)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  add = p.add_argument
  add('--variant', default='S/16')
  add('--batch', type=int, default=8)
  add('--image-size', type=int, default=224)
  add('--lora-rank', type=int, default=8)
  add('--steps', type=int, default=MIN_STEPS, help='timed train steps/side')
  add('--e2e-steps', type=int, help='default: --steps')
  add('--eval-steps', type=int, help='default: --steps')
  add('--warmup', type=int, default=3, help='untimed steps (compile)')
  add('--rounds', type=int, default=0, help='alternation rounds per '
      'phase; 0: one step per round (train, eval), 5 for e2e')
  add('--allow-few-steps', action='store_true',
      help=f'allow fewer than {MIN_STEPS} timed steps (smoke runs)')
  add('--device', choices=('cpu', 'gpu'), default='cpu')
  add('--dtype', choices=('auto', 'float32', 'bfloat16'), default='auto',
      help='JAX compute dtype and torch autocast; auto: bf16 on GPU and '
      'CPUs with native bf16, else float32')
  add('--torch-amp', choices=('auto', 'none', 'bf16', 'fp16'),
      default='auto', help='auto: none for float32, fp16+GradScaler on CUDA '
      '(released), bf16 on CPU')
  add('--attention', choices=('auto', 'none', 'xla', 'cudnn'),
      default='auto', help='auto: cudnn on GPU with 16-bit compute')
  add('--no-neutral', action='store_true', help='no neutral reference')
  add('--no-shared-base', action='store_true', help='JAX: two base passes')
  add('--no-augment', action='store_true', help='e2e without augmentation '
      '(resize + normalise only; smoke tests)')
  add('--remat', action='store_true', help='JAX: rematerialise blocks')
  add('--dinov3', action='store_true',
      help='DINOv3 token path (RoPE + registers, N=201) on both sides')
  add('--sides', default='jax,torch', help='comma list; see docstring')
  add('--phases', default=','.join(PHASES))
  add('--threads', type=int, default=len(os.sched_getaffinity(0)),
      help='cores per side (affinity; torch.set_num_threads)')
  add('--workers', type=int, help='loader processes per side; default 1 '
      'on CPU, 12 on GPU (released)')
  add('--prefetch', type=int, default=2, help='batches per loader worker')
  add('--round-skip', type=int, default=-1, help='e2e steps dropped per '
      'round (prefetched while the other side ran); -1: workers*prefetch')
  add('--data', default='fixture',
      help="TFDS name for e2e, or 'fixture': a fake release built with "
      'the real 3dpain/official builder')
  add('--data-dir', default=os.path.join(
    os.environ.get('TMPDIR', '/tmp'), 'jaxpain_bench_data'))
  add('--record-size', type=int, default=256, help='fixture image side')
  add('--identities', type=int, default=8, help='fixture train identities')
  add('--peak-gemm', type=int, help='side of the square GEMM that '
      'measures the peak; default 2048 on CPU, 8192 on GPU')
  add('--profile', help='folder: profile the train phase of every side '
      '(jax.profiler / torch.profiler) after its timed rounds')
  add('--profile-steps', type=int, default=2)
  add('--fast-compile', action='store_true',
      help='lower XLA optimisation (smoke tests; timings not meaningful)')
  add('--out', help='JSON report path')
  a = p.parse_args(argv)
  a.sides = [s.strip() for s in a.sides.split(',') if s.strip()]
  a.phases = [s.strip() for s in a.phases.split(',') if s.strip()]
  for s in a.sides:
    parse_side(s)
  if bad := set(a.phases) - set(PHASES):
    p.error(f'--phases: unknown {sorted(bad)}; choose from {PHASES}')
  if a.peak_gemm is None:
    a.peak_gemm = 8192 if a.device == 'gpu' else 2048
  if a.workers is None:
    a.workers = 12 if a.device == 'gpu' else 1
  a.e2e_steps = a.e2e_steps or a.steps
  a.eval_steps = a.eval_steps or a.steps
  if min(a.steps, a.e2e_steps, a.eval_steps) < MIN_STEPS and not (
      a.allow_few_steps):
    p.error(f'medians need >= {MIN_STEPS} timed steps per phase '
            '(performance.md §6); pass --allow-few-steps for smoke runs')
  if a.lora_rank < 1 and any(s.startswith('torch') for s in a.sides):
    p.error('--lora-rank must be >= 1 for the torch side (peft LoRA)')
  return a


def main(argv=None) -> dict:
  a = parse_args(argv)
  started = time.time()
  rep = run_bench(a)
  rep.update(
    command=' '.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
    date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
    wall_s=time.time() - started, cpu=cpu_info(), versions=versions(),
    python=platform.python_version(),
    config={k: v for k, v in vars(a).items()
            if isinstance(v, (int, float, str, list, bool, type(None)))})
  print(format_table(rep))
  if a.out:
    tmp = a.out + '.tmp'
    with open(tmp, 'w') as f:
      json.dump(rep, f, indent=2, default=str)
    os.replace(tmp, a.out)
  return rep


if __name__ == '__main__':
  main()
