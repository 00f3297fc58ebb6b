"""The sharding-choice sweep: sizes x shardings x topologies.

Each cell is the plain student step (configs/baseline.py: pain + neutral
through the shared frozen base, LoRA, cross-attention, heads) at 224 px,
compiled at the largest global batch that fits (runner.largest_batch).
Cells run in order of what the decisions need first (L/16 on v5p-128,
then the weak-scaling pair v5e-16 / v5e-256, then the rest), each cached,
so the sweep can be stopped and resumed.
"""

from __future__ import annotations

import logging

from jaxpain.aot import runner

VARIANTS = ("S/16", "B/16", "L/16", "g/14")
TOPOLOGIES = ("v5p-128", "v5e-16", "v5e-256", "v6e-256", "2xv5e-256")
CONFIG = "configs/baseline.py"


def config_spec(variant: str, sharding: str) -> str:
  return f"{CONFIG}:variant={variant},sharding={sharding}"


def cells(variants, shardings, topologies):
  order = {"L/16": 0, "B/16": 1, "S/16": 2, "g/14": 3}
  for topology in topologies:
    for variant in sorted(variants, key=lambda v: order.get(v, 9)):
      for sharding in shardings:
        yield variant, sharding, topology


def run(out_dir: str, variants, shardings, topologies,
        source_size: int = 256) -> None:
  """Runs every cell (cached ones return at once), with a progress bar."""
  from tqdm.auto import tqdm

  todo = list(cells(variants, shardings, topologies))
  bar = tqdm(todo, desc="aot sweep", dynamic_ncols=True)
  for variant, sharding, topology in bar:
    bar.set_postfix_str(f"{variant} {sharding} {topology}")
    try:
      found = runner.largest_batch(config_spec(variant, sharding), topology,
                                   out_dir, source_size=source_size)
      tqdm.write(f"{variant} {sharding} {topology}: largest batch "
                 f"{found['batch']} (tried per shard {found['tries']})")
    except Exception as e:  # one bad cell must not stop a sweep
      logging.exception("cell %s %s %s failed", variant, sharding, topology)
      tqdm.write(f"{variant} {sharding} {topology}: FAILED {e}")
