"""jaxpain.bench.context: FLOPs per pair, dtype and peak choice, CPU facts."""

import pytest

from jaxpain.bench import context


@pytest.mark.parametrize('variant,dinov3,train,eval_', [
  ('B/16', False, 147e9, 71.7e9),  # performance.md §3, N = 197
  ('L/16', False, 508e9, 249.0e9),
  ('B/16', True, 150e9, None),  # N = 201 (RoPE + 4 registers)
  ('L/16', True, 519e9, None),
])
def test_flops_match_the_derived_table(variant, dinov3, train, eval_):
  got = context.flops_per_pair(variant, 224, 8, True, dinov3, train=True)
  assert got == pytest.approx(train, rel=0.01)
  if eval_ is not None:
    fwd = context.flops_per_pair(variant, 224, 8, True, dinov3, train=False)
    assert fwd == pytest.approx(eval_, rel=0.01)


def test_flops_without_neutral_are_about_half():
  both = context.flops_per_pair('S/16', 224, 8, True)
  one = context.flops_per_pair('S/16', 224, 8, False)
  assert 0.45 < one / both < 0.5  # no second tower, no cross-attention


def test_bf16_only_where_the_hardware_has_it():
  assert context.resolve_dtype('auto', 'gpu', False) == 'bfloat16'
  assert context.resolve_dtype('auto', 'cpu', False) == 'float32'
  assert context.resolve_dtype('auto', 'cpu', True) == 'bfloat16'
  assert context.resolve_dtype('float32', 'gpu', True) == 'float32'
  assert context.native_bf16({'avx2', 'fma', 'avx512f'}) is False
  assert context.native_bf16({'avx512_bf16'}) and context.native_bf16(
    {'amx_bf16'})


def test_cpu_flags_read_from_a_cpuinfo_file(tmp_path):
  p = tmp_path / 'cpuinfo'
  p.write_text('processor\t: 0\nflags\t\t: fpu avx2 fma\n\nflags : x\n')
  assert context.cpu_flags(str(p)) == {'fpu', 'avx2', 'fma'}
  assert context.cpu_flags(str(tmp_path / 'none')) == set()


def test_cudnn_attention_only_on_gpu_and_only_with_16_bit_compute():
  assert context.attention_impl('gpu', 'auto', 'bfloat16') == 'cudnn'
  assert context.attention_impl('gpu', 'auto', 'float32') is None
  assert context.attention_impl('cpu', 'auto', 'bfloat16') is None
  assert context.attention_impl('cpu', 'xla', 'float32') == 'xla'
  assert context.attention_impl('gpu', 'none', 'bfloat16') is None
  with pytest.raises(ValueError, match='needs --device gpu'):
    context.attention_impl('cpu', 'cudnn', 'bfloat16')


def test_peak_is_a_datasheet_figure_on_known_gpus_else_measured():
  peak, how = context.choose_peak('gpu', 'NVIDIA H100 PCIe', 1e12, 8192)
  assert peak == 756e12 and 'datasheet' in how
  peak, _ = context.choose_peak('gpu', 'NVIDIA H100 80GB HBM3', 1e12, 8192)
  assert peak == 989.4e12
  peak, how = context.choose_peak('gpu', 'Some GPU', 1e12, 8192)
  assert peak == 1e12 and 'measured' in how
  peak, how = context.choose_peak('cpu', 'cpu', 1.2e11, 2048)
  assert peak == 1.2e11 and 'measured fp32 GEMM 2048^3' in how


def test_machine_context_fields():
  info = context.cpu_info()
  assert info['cores'] >= 1 and isinstance(info['native_bf16'], bool)
  v = context.versions()
  assert v['jax'] and set(v) == set(context.PACKAGES)
  load = context.load()
  assert len(load['load_avg']) == 3 and load['uptime_s'] > 0
  assert context.peak_rss() > 0
