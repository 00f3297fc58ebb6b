"""The sharding-choice sweep: sizes x shardings x topologies, in priority.

Each cell is the plain student step (configs/baseline.py: pain + neutral
through the shared frozen base, LoRA, cross-attention, heads) at 224 px at
the largest global batch that fits (runner.largest_batch). A compile of a
real size takes 5-20 minutes on the loaded 2-core development machine, so
the plan runs what the decisions need first and every cell is cached:

1. L/16 under all three shardings on v5p-128 (the MFU goal), compiled again
   at the largest batch ("verified");
2. L/16 under the best of them on v5e-16 and v5e-256 (weak scaling, both
   verified), v6e-256 and 2 x v5e-256 (multi-slice);
3. S/16, B/16, g/14 under all three shardings on v5e-256 (the smallest HBM
   per chip decides there), then under their best on v5e-16, v5p-128,
   v6e-256 and 2 x v5e-256.

Unverified cells report the figures of the probe compile and the largest
batch predicted from it (peak HBM is affine in the batch).
"""

from __future__ import annotations

import logging

from jaxpain.aot import report, runner

VARIANTS = ("S/16", "B/16", "L/16", "g/14")
SHARDINGS = ("dp", "fsdp", "fsdp_tp")
TOPOLOGIES = ("v5p-128", "v5e-16", "v5e-256", "v6e-256", "2xv5e-256")
CONFIG = "configs/baseline.py"


def config_spec(variant: str, sharding: str) -> str:
  return f"{CONFIG}:variant={variant},sharding={sharding}"


def plan(variants=VARIANTS, topologies=TOPOLOGIES):
  """(variant, sharding or None = best so far, topology, verify) in order."""
  steps = []
  if "L/16" in variants:
    steps += [("L/16", s, "v5p-128", True) for s in SHARDINGS]
    steps += [("L/16", None, t, t in ("v5e-16", "v5e-256"))
              for t in ("v5e-16", "v5e-256", "v6e-256", "2xv5e-256")]
  others = [v for v in variants if v != "L/16"]
  for v in others:
    steps += [(v, s, "v5e-256", False) for s in SHARDINGS]
  for v in others:
    steps += [(v, None, t, False)
              for t in ("v5e-16", "v5p-128", "v6e-256", "2xv5e-256")]
  return [s for s in steps if s[2] in topologies]


def best_sharding(out_dir: str, variant: str) -> str:
  """The sharding with the highest MFU among the cells done so far (the
  choice topology first: v5p-128 for L/16, v5e-256 for the others)."""
  where = "v5p-128" if variant == "L/16" else "v5e-256"
  rows = [r for r in report.rows(out_dir)
          if r["variant"] == variant and r["topology"] == where]
  if not rows:
    return "dp"
  return max(rows, key=lambda r: r["mfu"])["sharding"]


def run(out_dir: str, variants=VARIANTS, topologies=TOPOLOGIES,
        source_size: int = 256) -> None:
  """Runs the plan (cached cells return at once), with a progress bar."""
  from tqdm.auto import tqdm

  steps = plan(variants, topologies)
  bar = tqdm(steps, desc="aot sweep", dynamic_ncols=True)
  for variant, sharding, topology, verify in bar:
    sharding = sharding or best_sharding(out_dir, variant)
    bar.set_postfix_str(f"{variant} {sharding} {topology}")
    try:
      found = runner.largest_batch(
          config_spec(variant, sharding), topology, out_dir,
          source_size=source_size, verify=verify)
      how = "compiled" if found["verified"] else "predicted"
      tqdm.write(f"{variant} {sharding} {topology}: largest batch "
                 f"{found['batch']} ({how})")
    except Exception as e:  # one bad cell must not stop a sweep
      logging.exception("cell %s %s %s failed", variant, sharding, topology)
      tqdm.write(f"{variant} {sharding} {topology}: FAILED {e}")
