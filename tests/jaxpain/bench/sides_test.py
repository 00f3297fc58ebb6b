"""jaxpain.bench.sides: side specs and their overrides."""

import pytest

from jaxpain.bench import sides


def test_side_overrides_parse_and_bad_ones_name_the_problem():
  assert sides.parse_side('jax+shared_base=0+dtype=bfloat16') == (
    'jax', {'shared_base': '0', 'dtype': 'bfloat16'})
  assert sides.parse_side('jax+scan=0') == ('jax', {'scan': '0'})
  assert sides.parse_side('torch') == ('torch', {})
  with pytest.raises(SystemExit, match='accepts'):
    sides.parse_side('torch+remat=1')
  with pytest.raises(SystemExit, match='accepts'):
    sides.parse_side('jax+scan')
  with pytest.raises(SystemExit, match='unknown side'):
    sides.parse_side('tf')


def test_boolean_overrides():
  assert sides.flag({'scan': '0'}, 'scan', True) is False
  assert sides.flag({'scan': 'false'}, 'scan', True) is False
  assert sides.flag({'scan': '1'}, 'scan', False) is True
  assert sides.flag({}, 'scan', True) is True
