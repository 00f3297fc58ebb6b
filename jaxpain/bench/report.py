"""The train benchmark's report: Markdown tables for docs, JSON for machines.

The JSON report holds everything; the Markdown is what docs/benchmarks.md
quotes: per side and phase the rate, spread, MFU, CPU time and memory, then
the ratios (plain, paired with spread, per CPU second), the op profiles and
the peak used for MFU. Absent figures (None) print as 'n/a'.
"""

from __future__ import annotations

import json
import os

RESULT_FIELDS = ('steps', 'samples_per_s', 'samples_per_s_mean',
                 'step_ms_median', 'step_ms_p10', 'step_ms_p90',
                 'cpu_s_per_step_median', 'samples_per_cpu_s',
                 'round_median_ms', 'round_cpu_ms', 'first_step_s',
                 'flops_per_sample', 'mfu', 'peak_rss_bytes',
                 'device_peak_bytes')


def _num(v, fmt: str, scale: float = 1.0) -> str:
  return 'n/a' if v is None else format(v * scale, fmt)


def _mem(r: dict) -> str:
  dev = r.get('device_peak_bytes')
  b, kind = (dev, 'dev') if dev else (r.get('peak_rss_bytes'), 'RSS')
  return 'n/a' if not b else f'{b / 2 ** 30:.2f} GiB {kind}'


def _ratio(v) -> str:
  if isinstance(v, list):
    return '-'.join(_num(x, '.2f') + ('x' if x is not None else '')
                    for x in v)
  return 'n/a' if v is None else f'{v:.2f}x'


def result_rows(rep: dict) -> list[str]:
  """One Markdown row per side and phase."""
  lines = ['| side | phase | samples/s | step ms median | p10-p90 ms | steps '
           '| MFU | CPU-s per step | peak memory | first step s |',
           '|---|---|---|---|---|---|---|---|---|---|']
  for side, phases in rep['results'].items():
    for phase, r in phases.items():
      lines.append(
        f"| {side} | {phase} | {_num(r['samples_per_s'], '.2f')} | "
        f"{r['step_ms_median']:.0f} | {r['step_ms_p10']:.0f}-"
        f"{r['step_ms_p90']:.0f} | {r['steps']} | "
        f"{_num(r['mfu'], '.1f', 100)}% | "
        f"{_num(r['cpu_s_per_step_median'], '.2f')} | {_mem(r)} | "
        f"{r['first_step_s']:.1f} |")
  return lines


def format_table(rep: dict) -> str:
  """The Markdown tables of a report."""
  lines = result_rows(rep)
  lines += ['', '| phase | ratio | value |', '|---|---|---|']
  for phase, row in rep['ratios'].items():
    lines += [f'| {phase} | {k} | {_ratio(v)} |' for k, v in row.items()]
  for side, prof in rep.get('profile', {}).items():
    lines += ['', f"Profile of {side} (train, op time "
              f"{prof['op_ms_per_step']:.0f} ms/step): " + ', '.join(
                f"{k} {v['ms_per_step']:.0f} ms"
                for k, v in prof['categories'].items())]
  lines += ['', f"MFU peak: {_num(rep['peak_flops'], '.1f', 1e-9)} "
            f"GFLOP/s ({rep['peak_source']})."]
  if 'load' in rep:
    start, end = rep['load']['start'], rep['load']['end']
    lines.append(f"Load average (1 min) {start['load_avg'][0]:.1f} at the "
                 f"start, {end['load_avg'][0]:.1f} at the end.")
  return '\n'.join(lines)


def _gib(r: dict) -> str:
  return _mem(r).replace(' GiB', '')


def summary_table(reports: list[dict]) -> str:
  """One Markdown row per run and phase: the first JAX side against the
  first torch side (rates, paired ratio with spread, MFU, peak memory).

  Args:
    reports: reports of `jaxpain.bench.train.main`, e.g. one per variant.
  """
  lines = ['| variant | batch | phase | JAX samples/s | PyTorch samples/s '
           '| JAX / PyTorch (paired, p10-p90) | per CPU-s | MFU JAX / '
           'PyTorch | peak memory JAX / PyTorch (GiB) |',
           '|---|---|---|---|---|---|---|---|---|']
  for rep in reports:
    sides = list(rep['results'])
    jx = next(s for s in sides if s.startswith('jax'))
    tc = next((s for s in sides if s.startswith('torch')), None)
    cfg = rep.get('config', {})
    for phase, r in rep['results'][jx].items():
      t = rep['results'][tc][phase] if tc else {}
      row = rep['ratios'][phase]
      key = f'{jx} / {tc}'
      spread = _ratio(row.get(f'{key} paired p10-p90', [None, None]))
      lines.append(
        f"| {cfg.get('variant', '?')} | {cfg.get('batch', '?')} | {phase} | "
        f"{_num(r['samples_per_s'], '.1f')} | "
        f"{_num(t.get('samples_per_s'), '.1f')} | "
        f"{_ratio(row.get(f'{key} paired'))} ({spread}) | "
        f"{_ratio(row.get(f'{key} per CPU-s'))} | "
        f"{_num(r.get('mfu'), '.1f', 100)}% / "
        f"{_num(t.get('mfu'), '.1f', 100)}% | {_gib(r)} / "
        f"{_gib(t) if t else 'n/a'} |")
  return '\n'.join(lines)


def summarize_files(paths: list[str]) -> str:
  """`summary_table` of JSON reports on disk (unreadable ones are named)."""
  reports = []
  for path in paths:
    try:
      with open(path) as f:
        reports.append(json.load(f))
    except (OSError, ValueError) as e:
      raise SystemExit(f'bench report {path}: cannot read it ({e})') from e
  return summary_table(reports)


def write_json(rep: dict, path: str) -> None:
  """Writes the report atomically (a temp file, then a rename)."""
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(rep, f, indent=2, default=str)
  os.replace(tmp, path)
