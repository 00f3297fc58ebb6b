"""One process per benchmarked side, driven by messages from the parent.

Each side (JAX or PyTorch, possibly with overrides such as `jax+scan=0`)
lives in its own spawned process, so its peak memory, thread pool and CPU
time are its own, and the parent can alternate the sides step by step.
A side is named by a spec (`sides`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback

from jaxpain.bench.sides import parse_side

# glibc malloc tunables that keep freed memory in the process: no mmap for
# large blocks, one arena, no trimming. XLA CPU allocates its temporaries
# (about 1 GB for an S/16 train step) per execution; with glibc's defaults
# each large block is a fresh mmap, so every step page-faults all of it in
# again (~250k minor faults per step measured). Read by glibc at process
# start, hence set before a side's process is spawned.
MALLOC = {'default': None,
          'retain': 'glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:'
                    'glibc.malloc.trim_threshold=68719476736'}


def _environment(a, over: dict) -> None:
  """Process settings that must precede importing jax or torch."""
  cpus = sorted(os.sched_getaffinity(0))[:a.threads]
  os.sched_setaffinity(0, cpus)  # XLA sizes its pool from the affinity
  os.environ['OMP_NUM_THREADS'] = str(len(cpus))
  os.environ['XLA_PYTHON_CLIENT_PREALLOCATE'] = 'false'  # share the GPU
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  flags = os.environ.get('XLA_FLAGS', '')
  if a.fast_compile:  # smoke tests only: timings become meaningless
    flags += (' --xla_backend_optimization_level=0'
              ' --xla_llvm_disable_expensive_passes=true')
  if 'xla_flags' in over:  # jax+xla_flags=--xla_a=1,--xla_b=0
    flags += ' ' + over['xla_flags'].replace(',', ' ')
  os.environ['XLA_FLAGS'] = flags.strip()
  if a.device == 'cpu':
    os.environ['JAX_PLATFORMS'] = 'cpu'
    os.environ['CUDA_VISIBLE_DEVICES'] = ''


def _worker(spec: str, a, conn) -> None:
  """Worker process body: one side, driven by (command, args) messages."""
  try:
    kind, over = parse_side(spec)
    _environment(a, over)
    if 'src' in over:
      _import_from(over['src'])
    import absl.flags
    absl.flags.FLAGS.mark_as_parsed()  # grain reads absl flags
    if kind == 'torch':
      from jaxpain.bench.torch_side import TorchSide as Side
    else:
      from jaxpain.bench.jax_side import JaxSide as Side
    side = Side(a, over)
    conn.send(('ok', side.info()))
    while True:
      cmd, arg = conn.recv()
      if cmd == 'quit':
        break
      conn.send(('ok', getattr(side, cmd)(*arg)))
  except BaseException:  # noqa: BLE001  (reported to the parent)
    conn.send(('error', traceback.format_exc()))


def _import_from(src: str) -> None:
  """Makes `jaxpain` import from another checkout (a commit to compare)."""
  if not os.path.isdir(os.path.join(src, 'jaxpain')):
    raise SystemExit(f'--sides src={src}: no jaxpain package there')
  for name in [m for m in sys.modules if m.split('.')[0] == 'jaxpain']:
    del sys.modules[name]
  sys.path.insert(0, os.path.abspath(src))


@contextlib.contextmanager
def _malloc_env(setting: str):
  """GLIBC_TUNABLES for a process spawned inside (restored afterwards)."""
  if setting not in MALLOC:
    raise SystemExit(f'malloc={setting!r}: choose from {sorted(MALLOC)}')
  old = os.environ.get('GLIBC_TUNABLES')
  if MALLOC[setting] is None:
    os.environ.pop('GLIBC_TUNABLES', None)
  else:
    os.environ['GLIBC_TUNABLES'] = MALLOC[setting]
  try:
    yield
  finally:
    if old is None:
      os.environ.pop('GLIBC_TUNABLES', None)
    else:
      os.environ['GLIBC_TUNABLES'] = old


class Worker:
  """Parent-side handle of one side's process."""

  def __init__(self, ctx, spec: str, a):
    self.spec = spec
    self.conn, child = ctx.Pipe()
    self.proc = ctx.Process(target=_worker, args=(spec, a, child),
                            daemon=False)  # loaders spawn their own workers
    with _malloc_env(parse_side(spec)[1].get('malloc', a.malloc)):
      self.proc.start()

  def result(self):
    """The next reply; a side's failure is raised with its traceback."""
    status, value = self.conn.recv()
    if status == 'error':
      raise RuntimeError(f'side {self.spec!r} failed:\n{value}')
    return value

  def call(self, cmd: str, *arg):
    """Runs `side.cmd(*arg)` in the worker and returns its result."""
    self.conn.send((cmd, arg))
    return self.result()

  def close(self):
    try:
      self.conn.send(('quit', ()))
    except OSError:
      pass
    self.proc.join(timeout=60)
    if self.proc.is_alive():
      self.proc.terminate()
