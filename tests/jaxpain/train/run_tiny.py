"""Runs a short tiny-model training in its own process (resume, multi-host).

  python run_tiny.py WORKDIR --steps 9 [--kill_at 7] [--devices 8]
      [--coordinator localhost:PORT --num_processes 2 --process_id 0]

Writes WORKDIR/batches.jsonl (global batch record ids per step, single
process) and WORKDIR/params_<pid>.npz (final trainable parameters).
"""

import argparse
import json
import os
import signal
import sys

args = argparse.ArgumentParser()
args.add_argument("workdir")
args.add_argument("--steps", type=int, default=9)
args.add_argument("--kill_at", type=int, default=0)
args.add_argument("--devices", type=int, default=8)
args.add_argument("--mesh", default="-1,1,1")
args.add_argument("--coordinator", default=None)
args.add_argument("--num_processes", type=int, default=None)
args.add_argument("--process_id", type=int, default=None)
a = args.parse_args()

_COUNT = "--xla_force_host_platform_device_count"
os.environ["XLA_FLAGS"] = " ".join(
    [f for f in os.environ.get("XLA_FLAGS", "").split()
     if not f.startswith(_COUNT)] + [f"{_COUNT}={a.devices}"])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
  import absl.flags
  import jax
  import numpy as np

  absl.flags.FLAGS.mark_as_parsed()
  import tiny_model

  from jaxpain import sharding as shd
  from jaxpain.train import train_and_evaluate

  config = tiny_model.tiny_config("student", neutral_mode="random_view",
                                  val_split="", test_split="")
  config.num_train_steps = a.steps
  config.log_every = 1
  config.checkpoint_every = 3
  config.eval_every = 0
  config.async_checkpoints = True
  config.mesh.shape = tuple(int(x) for x in a.mesh.split(","))
  if a.coordinator:
    config.distributed.update(coordinator_address=a.coordinator,
                              num_processes=a.num_processes,
                              process_id=a.process_id)

  def hook(step, batch, metrics, train_state):
    if jax.process_count() == 1:
      rec = np.asarray(batch["record"]).tolist()
      with open(os.path.join(a.workdir, "batches.jsonl"), "a") as f:
        f.write(json.dumps({"step": step, "record": rec}) + "\n")
    if step == a.kill_at:
      os.kill(os.getpid(), signal.SIGKILL)
    if step == a.steps:
      flat = jax.tree_util.tree_flatten_with_path(
          shd.to_host(train_state["params"]))[0]
      np.savez(os.path.join(a.workdir, f"params_{jax.process_index()}.npz"),
               **{jax.tree_util.keystr(p): x for p, x in flat})

  result = train_and_evaluate(config, a.workdir, hooks=[hook])
  print("RESULT", json.dumps({"status": result["status"],
                              "origin": result["origin"],
                              "torch_imported": "torch" in sys.modules}))
