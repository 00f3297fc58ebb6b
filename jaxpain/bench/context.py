"""What a benchmark figure needs next to it: machine, versions, FLOPs, peak.

performance.md §6: a throughput is only comparable with the machine (CPU
model and its bf16 support, GPU), the software versions, the load it ran
under, and MFU against a named peak. The FLOPs per pair come from
`jaxpain.models.flops` (performance.md §3); the peak is a datasheet figure
on known GPUs and a measured GEMM on CPUs.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
from importlib import metadata

# bf16/fp16 dense peaks (FLOP/s), performance.md §4 (A1-A3); first match
# of the device name wins, so 'H100 PCIe' precedes 'H100'.
GPU_PEAKS = (('H100 PCIe', 756e12), ('H100', 989.4e12), ('H200', 989.4e12),
             ('L40S', 362e12), ('A100', 312e12))

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'grain', 'torch', 'timm',
            'peft', 'torchvision', 'tensorflow-datasets')


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


def cpu_flags(path: str = '/proc/cpuinfo') -> set[str]:
  """The CPU feature flags of the first core ('' set where unreadable)."""
  try:
    with open(path) as f:
      for line in f:
        if line.startswith('flags'):
          return set(line.partition(':')[2].split())
  except OSError:
    pass
  return set()


def native_bf16(flags: set[str]) -> bool:
  """Whether the CPU computes bf16 GEMMs natively (AVX512_BF16 or AMX)."""
  return bool({'avx512_bf16', 'amx_bf16'} & flags)


def cpu_info() -> dict:
  """CPU model, core count, vector extensions and native bf16 support."""
  info = {'model': platform.processor() or '?', 'cores': os.cpu_count()}
  try:
    out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    for line in out.splitlines():
      k, _, v = line.partition(':')
      if k.strip() == 'Model name':
        info['model'] = v.strip()
  except OSError:
    pass
  flags = cpu_flags()
  info['vector'] = sorted(f for f in flags if f in (
    'avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'))
  info['native_bf16'] = native_bf16(flags)
  return info


def versions() -> dict:
  """Installed versions of the packages a figure depends on (None: absent)."""
  out = {}
  for name in PACKAGES:
    try:
      out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      out[name] = None
  return out


def load() -> dict:
  """System uptime (s) and 1/5/15-min load averages: how shared it was."""
  try:
    with open('/proc/uptime') as f:
      up = float(f.read().split()[0])
  except (OSError, ValueError, IndexError):
    up = None
  return {'uptime_s': up, 'load_avg': list(os.getloadavg())}


def resolve_dtype(dtype: str, device: str, bf16_native: bool) -> str:
  """'auto': bf16 on GPU and on CPUs with native bf16, else float32.

  torch's bf16 GEMMs on CPUs without avx512_bf16/AMX fall back to a slow
  path (measured on the AVX2 dev machine: 0.26 vs 4.5 GFLOP/s), so a fair
  CPU comparison there is float32 on both sides.
  """
  if dtype != 'auto':
    return dtype
  return 'bfloat16' if device == 'gpu' or bf16_native else 'float32'


def attention_impl(device: str, attention: str, dtype: str) -> str | None:
  """`jax.nn.dot_product_attention` implementation for a side.

  'auto' picks cuDNN only on a GPU with 16-bit compute (cuDNN's fused
  attention has no float32 path and no CPU one), else XLA's own.
  """
  if attention == 'auto':
    return 'cudnn' if device == 'gpu' and dtype != 'float32' else None
  if attention == 'cudnn' and device != 'gpu':
    raise ValueError('cudnn attention needs --device gpu')
  return None if attention == 'none' else attention


def choose_peak(device: str, device_name: str, measured: float | None,
                gemm_side: int) -> tuple[float | None, str]:
  """Peak FLOP/s used for MFU, and how it was obtained.

  Args:
    device: 'cpu' or 'gpu'.
    device_name: the device kind reported by a side (GPU name).
    measured: best measured GEMM FLOP/s of the run (None: too fast for
      the clock, so MFU is absent).
    gemm_side: side of the square GEMM that measured it.
  """
  if device == 'gpu':
    for key, value in GPU_PEAKS:
      if key in device_name:
        return value, f'{key} dense bf16 peak (datasheet, performance.md §4)'
    return measured, f'measured bf16 GEMM {gemm_side}^3 (best of the sides)'
  return measured, (f'measured fp32 GEMM {gemm_side}^3 on this CPU, best of '
                    'the sides, at the start and the end of the run (no '
                    'datasheet peak used)')


def peak_rss() -> int:
  """Peak resident memory of this process, bytes."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
