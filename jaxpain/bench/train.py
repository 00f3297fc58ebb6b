"""ViTPain training throughput: jaxpain (JAX) against the PyTorch baseline.

Both sides train the same configuration (variant, batch, resolution, LoRA
rank, neutral reference) on the same device, in one run, ALTERNATING: each
phase runs in rounds of K steps per side, the side order flipping every
round, so load from other processes and thermal drift hit both alike. Each
side lives in its own worker process (`workers`), so its peak memory is its
own.

Phases (performance.md §6):
  train  model-only: device-resident batches, median step time.
  e2e    end-to-end: the real input pipeline. JAX: grain over
         `tfds.data_source` (host decode) + on-device augmentation inside
         the jitted step. PyTorch: a DataLoader doing the released CPU-side
         torchvision transforms on the same decoded records.
  eval   forward only (pairs/s).

`scripts/bench_train.py` parses the arguments and calls `main`.
"""

from __future__ import annotations

import datetime
import os
import platform
import time

from jaxpain.bench import context, fixture, report, stats, workers

PHASES = ('train', 'e2e', 'eval')
MIN_STEPS = 50


def phase_steps(a, phase: str) -> int:
  return {'train': a.steps, 'e2e': a.e2e_steps, 'eval': a.eval_steps}[phase]


def run_bench(a) -> dict:
  """Runs every phase, alternating sides; returns the report dict."""
  import multiprocessing as mp
  a.resolved_dtype = context.resolve_dtype(
    a.dtype, a.device, context.cpu_info()['native_bf16'])
  a.data_name, a.data_dir_resolved = a.data, a.data_dir
  if 'e2e' in a.phases and a.data == 'fixture':
    a.data_name = fixture.NAME
    a.data_dir_resolved = fixture.prepare_fixture(
      a.data_dir, a.record_size, a.identities)
  ctx = mp.get_context('spawn')
  sides = [workers.Worker(ctx, s, a) for s in a.sides]
  rep = {'results': {s: {} for s in a.sides}, 'load_avg': {},
         'load': {'start': context.load()}}
  try:
    infos = {w.spec: w.result() for w in sides}
    measured = {w.spec: [w.call('peak')] for w in sides}
    for phase in a.phases:
      rep['load_avg'][phase] = _phase(a, phase, sides, rep)
    for w in sides:  # again at the end: the load may have changed
      measured[w.spec].append(w.call('peak'))
  finally:
    for w in sides:
      w.close()
  rep['load']['end'] = context.load()
  name = next(iter(infos.values()))['device']
  best = max((x for v in measured.values() for x in v if x is not None),
             default=None)
  peak, how = context.choose_peak(a.device, name, best, a.peak_gemm)
  rep.update(sides=infos, peak_flops=peak, peak_source=how,
             measured_gemm_flops=measured)
  for phases in rep['results'].values():
    for r in phases.values():
      r['mfu'] = stats.ratio(
        None if r['samples_per_s'] is None
        else r['flops_per_sample'] * r['samples_per_s'], peak)
  rep['ratios'] = stats.ratios(rep['results'], a.sides, a.phases)
  return rep


def _phase(a, phase: str, sides, rep: dict) -> list[float]:
  """Warm-up, then alternating rounds; stores each side's summary.

  Returns:
    The 1-min load average before and after the phase.
  """
  n = phase_steps(a, phase)
  # e2e: drop the batches a loader prefetched while the other side ran.
  skip = 0
  if phase == 'e2e':
    skip = a.workers * a.prefetch if a.round_skip < 0 else a.round_skip
  flops = context.flops_per_pair(
    a.variant, a.image_size, a.lora_rank, not a.no_neutral, a.dinov3,
    train=phase != 'eval')
  load = [os.getloadavg()[0]]
  first = {w.spec: w.call('run', phase, a.warmup) for w in sides}
  times: dict[str, list] = {w.spec: [] for w in sides}
  rounds: dict[str, list] = {w.spec: [] for w in sides}
  # Default: one step per round (train, eval), so drifting load from other
  # processes hits both sides alike; e2e needs longer rounds that drain
  # the prefetched batches.
  rounds_n = a.rounds or (5 if phase == 'e2e' else n)
  for r, k in enumerate(stats.split_rounds(n, rounds_n)):
    for w in (sides if r % 2 == 0 else sides[::-1]):
      t = w.call('run', phase, k + skip)[skip:]
      times[w.spec] += t
      rounds[w.spec].append(stats.round_median(t))
    print(f'  {phase} round {r + 1}: ' + ', '.join(
      f'{s} {t[-1][0]:.0f} ms' for s, t in rounds.items()), flush=True)
  load.append(os.getloadavg()[0])
  if a.profile and phase == 'train':
    for w in sides:
      out = os.path.join(a.profile, w.spec.replace('+', '_'))
      os.makedirs(out, exist_ok=True)
      rep.setdefault('profile', {})[w.spec] = w.call(
        'profile', phase, a.profile_steps, out)
  for w in sides:
    res = stats.summarize(times[w.spec], a.batch)
    res.update(first_step_s=first[w.spec][0][0], flops_per_sample=flops,
               round_median_ms=[m for m, _ in rounds[w.spec]],
               round_cpu_ms=[c for _, c in rounds[w.spec]],
               **w.call('memory'))
    rep['results'][w.spec][phase] = res
  return load


def main(a, command: str) -> dict:
  """Runs the benchmark for parsed arguments; prints and writes the report.

  Args:
    a: the parsed arguments of `scripts/bench_train.py`.
    command: the command line, recorded in the report.
  """
  started = time.time()
  rep = run_bench(a)
  rep.update(
    command=command,
    date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
    wall_s=time.time() - started, cpu=context.cpu_info(),
    versions=context.versions(), python=platform.python_version(),
    config={k: v for k, v in vars(a).items()
            if isinstance(v, (int, float, str, list, bool, type(None)))})
  print(report.format_table(rep))
  if a.out:
    report.write_json(rep, a.out)
  return rep
