"""ViTPain training throughput: jaxpain (JAX) against the PyTorch baseline.

Both sides train the same configuration on the same device, in one run,
alternating step by step (`jaxpain.bench.train` has the method). Sides can
carry overrides to measure single levers in the same run, e.g.
`--sides jax,torch,jax+shared_base=0,jax+dtype=bfloat16,jax+scan=0`.

  python scripts/bench_train.py --variant S/16 --batch 8 --steps 50 \\
      --out bench.json
  python scripts/bench_train.py --device gpu --variant L/16 --batch 128

Output: a Markdown table on stdout and a JSON file (--out). See
docs/benchmarks.md for results and how to read them.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxpain.bench import sides, train  # noqa: E402

# scripts/bench_input.py builds its data with this.
from jaxpain.bench.fixture import prepare_fixture  # noqa: E402,F401


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  add = p.add_argument
  add('--variant', default='S/16')
  add('--batch', type=int, default=8)
  add('--image-size', type=int, default=224)
  add('--lora-rank', type=int, default=8)
  add('--steps', type=int, default=train.MIN_STEPS,
      help='timed train steps/side')
  add('--e2e-steps', type=int, help='default: --steps')
  add('--eval-steps', type=int, help='default: --steps')
  add('--warmup', type=int, default=3, help='untimed steps (compile)')
  add('--rounds', type=int, default=0, help='alternation rounds per '
      'phase; 0: one step per round (train, eval), 5 for e2e')
  add('--allow-few-steps', action='store_true',
      help=f'allow fewer than {train.MIN_STEPS} timed steps (smoke runs)')
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
  add('--prng', choices=('threefry', 'rbg', 'unsafe_rbg'),
      default='threefry', help="JAX dropout PRNG (config.dropout_prng)")
  add('--malloc', choices=('default', 'retain'), default='default',
      help='glibc malloc tunables of every side; retain: keep freed memory '
      '(no per-step page faults; jaxpain.bench.workers.MALLOC)')
  add('--sides', default='jax,torch', help='comma list; see docstring')
  add('--phases', default=','.join(train.PHASES))
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
    sides.parse_side(s)
  if bad := set(a.phases) - set(train.PHASES):
    p.error(f'--phases: unknown {sorted(bad)}; choose from {train.PHASES}')
  if a.peak_gemm is None:
    a.peak_gemm = 8192 if a.device == 'gpu' else 2048
  if a.workers is None:
    a.workers = 12 if a.device == 'gpu' else 1
  a.e2e_steps = a.e2e_steps or a.steps
  a.eval_steps = a.eval_steps or a.steps
  if min(a.steps, a.e2e_steps, a.eval_steps) < train.MIN_STEPS and not (
      a.allow_few_steps):
    p.error(f'medians need >= {train.MIN_STEPS} timed steps per phase '
            '(performance.md §6); pass --allow-few-steps for smoke runs')
  if a.attention == 'cudnn' and a.device != 'gpu':
    p.error('--attention cudnn needs --device gpu (cuDNN has no CPU path)')
  if a.lora_rank < 1 and any(s.startswith('torch') for s in a.sides):
    p.error('--lora-rank must be >= 1 for the torch side (peft LoRA)')
  return a



def main(argv=None) -> dict:
  a = parse_args(argv)
  command = ' '.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
  return train.main(a, command)


if __name__ == '__main__':
  main()
