"""Per-op profiles of a train step, grouped so JAX and PyTorch compare.

XLA (perfetto trace from `jax.profiler`) and torch (`torch.profiler`) name
their ops differently; a coarse category per op name (GEMM, attention,
RNG/dropout, norm/reduce, elementwise/other) puts both on one table, which
is how docs/benchmarks.md says where the time of a step goes.
"""

from __future__ import annotations

import glob
import gzip
import json
import os

CATEGORIES = (
  ('attention', ('attention', 'scaled_dot', 'softmax')),
  ('rng/dropout', ('rng', 'random', 'threefry', 'dropout', 'bernoulli',
                   'philox')),
  ('gemm', ('dot', 'ynn', 'gemm', 'conv', 'mm', 'linear', 'matmul',
            'einsum')),
  ('norm/reduce', ('norm', 'reduce', 'sum', 'mean')),
)
OTHER = 'elementwise/other'


def category(name: str) -> str:
  """Coarse op class from an XLA thunk or aten op name."""
  n = name.lower()
  for cat, keys in CATEGORIES:
    if any(k in n for k in keys):
      return cat
  return OTHER


def op_summary(durations: dict[str, float], steps: int, top: int = 15
               ) -> dict:
  """Per-step op times (ms) by category and the `top` ops, with shares.

  Args:
    durations: op name -> summed duration in microseconds over `steps`.
    steps: how many steps the durations cover.
    top: how many of the longest ops to list.

  Returns:
    {'categories': {cat: {ms_per_step, share}}, 'top_ops': {name: ...},
    'op_ms_per_step': total}; categories and ops longest first.
  """
  total = sum(durations.values())
  cats: dict[str, float] = {}
  for name, us in durations.items():
    cats[category(name)] = cats.get(category(name), 0.0) + us

  def per(us):
    return {'ms_per_step': us / 1e3 / steps,
            'share': us / total if total > 0 else None}

  ops = sorted(durations.items(), key=lambda kv: -kv[1])[:top]
  return {'categories': {k: per(v) for k, v in sorted(
    cats.items(), key=lambda kv: -kv[1])},
          'top_ops': {k: per(v) for k, v in ops},
          'op_ms_per_step': total / 1e3 / steps}


def _is_op(event: dict) -> bool:
  """Complete events of XLA ops (not runtime, Python or thread spans)."""
  name = event.get('name', '')
  return (event.get('ph') == 'X'
          and not name.startswith(('$', 'end: '))
          and not any(k in name for k in ('::', 'Pjit', 'Threadpool', ' ')))


def trace_op_durations(events: list[dict]) -> dict[str, float]:
  """Summed durations (us) per XLA op name in trace events."""
  out: dict[str, float] = {}
  for e in events:
    if _is_op(e):
      out[e['name']] = out.get(e['name'], 0.0) + float(e.get('dur', 0.0))
  return out


def jax_trace_ops(trace_dir: str) -> dict[str, float]:
  """Summed op durations (us) of the newest perfetto trace under a folder."""
  paths = sorted(glob.glob(os.path.join(
    trace_dir, '**', '*.trace.json.gz'), recursive=True))
  if not paths:
    raise FileNotFoundError(f'no *.trace.json.gz under {trace_dir}')
  with gzip.open(paths[-1]) as f:
    events = json.load(f)
  events = events['traceEvents'] if isinstance(events, dict) else events
  return trace_op_durations(events)
