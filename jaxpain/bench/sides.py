"""Side specs: which framework a benchmark side runs, with what overrides.

A spec is `kind[+key=value...]`, e.g. `jax+scan=0` or `torch+amp=bf16`:
single levers measured as extra sides in the same run as the defaults.
"""

from __future__ import annotations

# Overrides each side kind accepts in its spec. Any side: `malloc` (glibc
# allocator tunables, see workers.MALLOC), `xla_flags` (comma-separated,
# appended to XLA_FLAGS), `src` (import jaxpain from another checkout, to
# compare two commits in one run).
COMMON_KEYS = ('malloc', 'xla_flags', 'src')
SIDE_KEYS = {'jax': ('dtype', 'shared_base', 'remat', 'attention', 'scan',
                     'prng', *COMMON_KEYS),
             'torch': ('amp', *COMMON_KEYS)}


def parse_side(spec: str) -> tuple[str, dict]:
  """'jax+dtype=bfloat16+remat=1' -> ('jax', {'dtype': ..., 'remat': ...}).

  Raises:
    SystemExit: with one line naming the bad part and what is accepted.
  """
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


def flag(over: dict, key: str, default: bool) -> bool:
  """A boolean override ('0'/'false' are False), else `default`."""
  return over[key] not in ('0', 'false') if key in over else bool(default)
