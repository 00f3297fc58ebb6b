"""jaxpain.bench.profiling: op categories, summaries and trace parsing."""

import gzip
import json

import pytest

from jaxpain.bench import profiling


@pytest.mark.parametrize('name,cat', [
  ('dot.12', 'gemm'), ('ynn_fusion.3', 'gemm'), ('aten::addmm', 'gemm'),
  ('aten::_scaled_dot_product_flash_attention', 'attention'),
  ('threefry2x32.4', 'rng/dropout'), ('aten::bernoulli_', 'rng/dropout'),
  ('reduce.7', 'norm/reduce'), ('aten::native_layer_norm', 'norm/reduce'),
  ('copy_bitcast_fusion', 'elementwise/other'),
  ('dynamic-update-slice.2', 'elementwise/other'),
])
def test_category_of_xla_and_aten_names(name, cat):
  assert profiling.category(name) == cat


def test_op_summary_per_step_and_shares():
  s = profiling.op_summary({'dot.1': 3000.0, 'dot.2': 1000.0,
                            'fusion.3': 4000.0}, steps=2, top=2)
  assert s['op_ms_per_step'] == pytest.approx(4.0)
  assert s['categories']['gemm'] == {'ms_per_step': pytest.approx(2.0),
                                     'share': pytest.approx(0.5)}
  assert list(s['top_ops']) == ['fusion.3', 'dot.1']
  assert list(s['categories'])[0] in ('gemm', 'elementwise/other')


def test_an_empty_profile_has_absent_shares():
  s = profiling.op_summary({'dot.1': 0.0}, steps=1)
  assert s['op_ms_per_step'] == 0 and s['categories']['gemm']['share'] is None


def test_trace_keeps_xla_ops_only(tmp_path):
  events = [
    {'ph': 'X', 'name': 'dot.1', 'dur': 5}, {'ph': 'X', 'name': 'dot.1',
                                             'dur': 7},
    {'ph': 'X', 'name': 'fusion.2', 'dur': 3},
    {'ph': 'X', 'name': 'PjitFunction(step)', 'dur': 100},
    {'ph': 'X', 'name': 'ThunkExecutor::Execute', 'dur': 100},
    {'ph': 'X', 'name': '$python.py:1 f', 'dur': 100},
    {'ph': 'i', 'name': 'dot.9', 'dur': 100},
  ]
  d = tmp_path / 'plugins' / 'profile' / 'run'
  d.mkdir(parents=True)
  with gzip.open(d / 'host.trace.json.gz', 'wt') as f:
    json.dump({'traceEvents': events}, f)
  assert profiling.jax_trace_ops(str(tmp_path)) == {'dot.1': 12.0,
                                                    'fusion.2': 3.0}
  with pytest.raises(FileNotFoundError, match='trace'):
    profiling.jax_trace_ops(str(tmp_path / 'none'))
