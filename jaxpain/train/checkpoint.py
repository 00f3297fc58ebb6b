"""Orbax checkpoints: keep-N latest + best-by-metric, grain state alongside.

A checkpoint step folder holds two items:
  'state'  {'train': {'step', 'params': {'lora', 'head'}, 'opt_state'},
            'frozen': ..., 'other': ...}   (sharded arrays, StandardSave)
  'data'   the grain iterator state (one JSON per process), so a resumed run
           continues with exactly the next batch.

Orbax writes each step into a temporary folder and renames it when the
(asynchronous) save has finished, so a run killed mid-save leaves the
previous checkpoints intact and the partial folder is ignored. A finished
step that was damaged later (bit rot, a cut copy) is set aside by the
trainer when an older step still restores: renamed `<step>.damaged`, which
Orbax ignores, never deleted. Retention is
the union of the latest `keep` steps and the best `keep_best` steps by
`best_metric` (steps saved without that metric only count as latest).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers as cm

from synth.cli_errors import UserError


class CheckpointError(UserError):
  """A checkpoint that cannot be read (corrupt or from another config)."""


class Checkpointer:
  """Thin wrapper over `ocp.CheckpointManager` with our retention policy."""

  def __init__(self, directory: str, *, keep: int = 2, keep_best: int = 1,
               best_metric: str = "val/mae", best_mode: str = "min",
               async_save: bool = True, read_only: bool = False):
    self.directory = os.path.abspath(directory)
    self.best_metric = best_metric
    self._read_only = read_only

    def metric(m):
      return float(m[best_metric])

    policy = cm.AnyPreservationPolicy([
        cm.LatestN(n=max(keep, 1)),
        cm.BestN(get_metric_fn=metric, reverse=(best_mode == "min"),
                 n=keep_best, keep_checkpoints_without_metrics=False),
    ])
    options = ocp.CheckpointManagerOptions(
        preservation_policy=None if read_only else policy,
        best_fn=metric, best_mode=best_mode, create=not read_only,
        read_only=read_only, enable_async_checkpointing=async_save)
    # Readers restore PARTS of the state (init_from, the teacher, predict),
    # which needs the PyTree handler (same files as StandardSave) and its
    # metadata; the writer keeps Orbax's default handler for StandardSave.
    handlers = None
    if read_only:
      handlers = {"state": ocp.PyTreeCheckpointHandler(),
                  "data": grain.checkpoint.CheckpointHandler()}
    self._mgr = ocp.CheckpointManager(self.directory, options=options,
                                      item_handlers=handlers)

  # ------------------------------------------------------------- queries --
  def all_steps(self) -> list[int]:
    return list(self._mgr.all_steps())

  def latest_step(self) -> int | None:
    return self._mgr.latest_step()

  def best_step(self) -> int | None:
    return self._mgr.best_step()

  def resolve(self, which: str | int) -> int | None:
    """'latest' | 'best' | a step number -> an existing step or None."""
    if which == "latest":
      return self.latest_step()
    if which == "best":  # falls back to latest when no step has metrics
      return self.best_step() or self.latest_step()
    step = int(which)
    return step if step in self.all_steps() else None

  def set_aside(self, step: int) -> str:
    """Renames the folder of `step` to `<step>.damaged[.N]`; the new path.

    Process 0 renames; every process waits for it, then forgets the step.
    """
    src = os.path.join(self.directory, str(step))
    dst = f"{src}.damaged"
    n = 0
    while os.path.exists(dst):
      n += 1
      dst = f"{src}.damaged.{n}"
    if jax.process_index() == 0:
      os.rename(src, dst)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"jaxpain_set_aside_{step}")
    self._mgr.reload()
    return dst

  # ---------------------------------------------------------------- save --
  def save(self, step: int, tree: Any, data_iterator: Any = None,
           metrics: Mapping[str, float] | None = None,
           force: bool = False) -> bool:
    """Starts an (async) save of `tree` and the iterator state at `step`."""
    items = {"state": ocp.args.StandardSave(tree)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    if metrics is not None and self.best_metric not in metrics:
      metrics = None
    return self._mgr.save(step, args=ocp.args.Composite(**items),
                          metrics=dict(metrics) if metrics else None,
                          force=force)

  def wait(self) -> None:
    self._mgr.wait_until_finished()

  def close(self) -> None:
    self._mgr.wait_until_finished()
    self._mgr.close()

  # ------------------------------------------------------------- restore --
  def restore(self, step: int, abstract_tree: Any,
              data_iterator: Any = None) -> Any:
    """Restores `step` into the layout of `abstract_tree` (with shardings).

    The iterator, when given, is restored in place.

    Raises:
      CheckpointError: with the step folder and what to do about it.
    """
    if self._read_only:
      items = {"state": ocp.args.PyTreeRestore(
          abstract_tree,
          ocp.checkpoint_utils.construct_restore_args(abstract_tree))}
    else:
      items = {"state": ocp.args.StandardRestore(abstract_tree)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    try:
      out = self._mgr.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # Orbax/TensorStore raise many kinds
      raise self._error(step, e) from e
    return out["state"]

  def restore_partial(self, step: int, abstract_tree: Any) -> Any:
    """Restores only the leaves of `abstract_tree` present in the checkpoint.

    Used by `init_from`: e.g. a finetune run loading a pretraining run's
    parameters. Leaves missing from `abstract_tree` are not read.
    """
    restore_args = ocp.checkpoint_utils.construct_restore_args(abstract_tree)
    try:
      out = self._mgr.restore(step, args=ocp.args.Composite(
          state=ocp.args.PyTreeRestore(abstract_tree, restore_args,
                                       partial_restore=True)))
    except Exception as e:
      raise self._error(step, e) from e
    return out["state"]

  def metadata(self, step: int) -> Any:
    """The saved tree's structure with shapes and dtypes (no array data)."""
    try:
      meta = self._mgr.item_metadata(step)
      state = meta["state"] if "state" in meta else meta
      return getattr(state, "tree", state)
    except Exception as e:
      raise self._error(step, e) from e

  def _error(self, step: int, e: Exception) -> CheckpointError:
    others = [s for s in self.all_steps() if s != step]
    return CheckpointError(
        f"cannot restore checkpoint step {step} from {self.directory}: "
        f"{type(e).__name__}: {' '.join(str(e).split())[:300]}. The "
        "checkpoint is corrupt or was written with a different "
        "model/optimizer config (other steps: "
        f"{others or 'none'}). Resume with the config that wrote it, or "
        "start in a new workdir.")


def abstract(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a tree of jax.Arrays."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def log_steps(ckpt: Checkpointer) -> None:
  logging.info("checkpoints in %s: %s (best: %s)", ckpt.directory,
               ckpt.all_steps(), ckpt.best_step())
