"""`train_and_evaluate(config, workdir)`: the whole training story, in order.

Sections (big_vision's layout): distributed set-up and work folder; mesh;
input pipeline; model, optimizer and teacher, created sharded; checkpoint
and resume; compiled steps; the train loop; final evaluation.

Resume order (first that applies):
  1. the latest checkpoint in `workdir/checkpoints` (model, optimizer, step
     and the grain iterator: the run continues exactly where it stopped);
  2. `config.init_from` (parameters only: another run's checkpoint, or
     imported PyTorch weights via jaxpain.convert);
  3. fresh initialisation from `config.seed`.

Stops cleanly: SIGTERM saves a checkpoint and returns (status 'preempted');
a NaN/inf loss raises NonFiniteLossError before anything non-finite is
saved, so the last checkpoint on disk is the last good one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxpain import sharding as shd
from jaxpain.data import pipeline
from jaxpain.train import checkpoint as ckpt_lib
from jaxpain.train import config as config_lib
from jaxpain.train import evaluate as eval_lib
from jaxpain.train import metrics_writer, model_lib
from jaxpain.train import state as state_lib
from jaxpain.train import steps as steps_lib


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or inf; the last good checkpoint is kept."""


def maybe_initialize_distributed(config) -> None:
  """`jax.distributed.initialize` when config.distributed asks for it."""
  d = config.distributed
  if not (d.initialize or d.coordinator_address):
    return
  if jax.distributed.is_initialized():
    return
  jax.distributed.initialize(
      coordinator_address=d.coordinator_address,
      num_processes=d.num_processes, process_id=d.process_id)


def _write_json(path: str, obj: Any) -> None:
  """Atomic write (temp name, then rename): never a half-written file."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True, default=str)
  os.replace(tmp, path)


class PreemptionGuard:
  """Turns SIGTERM into a flag the train loop checks between steps."""

  def __init__(self):
    self.flag = threading.Event()
    self._old = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._old = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    logging.warning("SIGTERM: saving a checkpoint and stopping")
    self.flag.set()

  def __exit__(self, *exc):
    if self._old is not None:
      signal.signal(signal.SIGTERM, self._old)
    return False

  def should_stop(self, step: int, every: int) -> bool:
    """All processes agree (checked every `every` steps when multi-host)."""
    if jax.process_count() == 1:
      return self.flag.is_set()
    if step % every:
      return False
    from jax.experimental import multihost_utils

    flags = multihost_utils.process_allgather(
        np.int32(self.flag.is_set()))
    return bool(np.max(flags))


def _check_finite(step: int, m: Mapping[str, float], ckpt) -> None:
  if not math.isfinite(m["loss"]):
    ckpt.wait()
    good = ckpt.latest_step()
    where = (f"the last good checkpoint is step {good} in {ckpt.directory}"
             if good is not None else "no checkpoint had been saved yet")
    raise NonFiniteLossError(
        f"loss is {m['loss']} at step {step} (grad_norm {m['grad_norm']}). "
        f"Nothing non-finite was saved; {where}. Lower config.optim.lr, add "
        "warm-up, or check the data for bad (NaN) labels.")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       sources: Mapping[str, Any] | None = None,
                       hooks: Sequence[Callable[..., None]] = ()
                       ) -> dict[str, Any]:
  """Trains per `config` in `workdir` (resuming if possible), evaluates.

  Args:
    config: a config from configs/*.py (see jaxpain.train.config).
    workdir: output folder: checkpoints/, metrics.jsonl, tensorboard/,
      curves.png, config.json, results.json.
    sources: optional {split name: random-access source} used instead of
      opening config.data.name (e.g. UNBC folds).
    hooks: callables `hook(step, batch=, metrics=, train_state=)` run after
      every train step (device values; a hook that reads them forces a
      sync).
      For instrumentation: logging batches, profiling, tests.

  Returns:
    {'status', 'step', 'best_step', 'train': last train metrics, 'val':
    metrics of the final model, 'test': metrics of the best checkpoint,
    'workdir'}.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  config_lib.validate(config)
  model_lib.check(config.model)
  # ------------------------------------------------------ distributed -----
  maybe_initialize_distributed(config)

  # ------------------------------------------------------------- mesh -----
  # Everything that can be wrong with the config or the data is checked
  # before anything is written to the work folder.
  mesh = shd.mesh_from_config(config)
  shd.check_batch(config.batch_size, mesh, config.batch_axes)
  shd.check_batch(config.eval_batch_size, mesh, config.batch_axes)
  batch_sh = shd.batch_sharding(mesh, config.batch_axes)
  logging.info("mesh %s over %d processes", dict(mesh.shape),
               jax.process_count())

  # --------------------------------------------------- input pipeline -----
  train_data = eval_lib.open_split(config, config.data.train_split, sources)
  n_train = len(train_data.index.example_records())
  total = config.num_train_steps or max(
      1, int(math.ceil(config.num_epochs * n_train / config.batch_size)))
  train_ds = pipeline.train_dataset(
      train_data.source, train_data.index, _train_spec(config),
      config.batch_size, batch_sh, config.data.num_workers,
      config.data.worker_buffer)
  batches = pipeline.GlobalBatches(train_ds, batch_sh, config.batch_size,
                                   prefetch=config.data.device_prefetch)
  val_data = _maybe_split(config, config.data.val_split, sources)

  # ---------------------------------------------------------- workdir -----
  workdir = os.path.abspath(workdir)
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    _write_json(os.path.join(workdir, "config.json"), config.to_dict())
  writer = metrics_writer.MetricsWriter(workdir)
  try:
    result = _train(config, workdir, mesh, batches, val_data, total, writer,
                    sources, hooks)
  finally:
    writer.close()
  if jax.process_index() == 0:
    _write_json(os.path.join(workdir, "results.json"), result)
  return result


def _train(config, workdir, mesh, batches, val_data, total, writer, sources,
           hooks) -> dict[str, Any]:
  """Model, checkpoints, steps, loop and final evaluation."""
  # --------------------------------------- model, optimizer, teacher ---
  setup = state_lib.create(config, mesh, total)
  logging.info("parameters: %s", shd.replication_report(
      {"p": setup.train["params"], "f": setup.consts["frozen"]}, mesh))
  teacher = None
  if config.mode == "student" and config.teacher.workdir:
    teacher = state_lib.load_teacher(
        config.teacher.workdir, config.teacher.checkpoint, mesh, config.seed)

  # ------------------------------------------------ checkpoint, resume ---
  ckpt = ckpt_lib.Checkpointer(
      os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints,
      keep_best=config.keep_best, best_metric=config.best_metric,
      best_mode=config.best_mode, async_save=config.async_checkpoints)
  try:
    origin = _resume_or_init(config, setup, ckpt, batches, mesh)
    start = int(jax.device_get(setup.train["step"]))
    logging.info("starting at step %d of %d (%s)", start, total, origin)

    # ---------------------------------------------------- compiled steps ---
    with shd.mesh_context(mesh, setup.parts.rules):
      train_step = steps_lib.make_train_step(config, setup, mesh, teacher)
      eval_step = steps_lib.make_eval_step(config, setup, mesh)

      def evaluate(data):
        pred = eval_lib.run(eval_step, setup.train["params"], setup.consts,
                            data, config, mesh)
        return eval_lib.metrics(pred)

      # ------------------------------------------------------ train loop --
      result = _loop(config, setup, train_step, batches, ckpt, writer,
                     evaluate, val_data, teacher, start, total, hooks)

      # ------------------------------------------------ final evaluation --
      if result["status"] == "done":
        result.update(_final_eval(config, setup, ckpt, evaluate, sources,
                                  writer))
  finally:
    ckpt.close()
  writer.plot()
  result.update(workdir=workdir, origin=origin, total_steps=total)
  return result


def _train_spec(config) -> pipeline.InputSpec:
  if config.mode == "teacher":
    fields = ("heatmap",)
  else:
    fields = ("image",) + (("neutral",) if config.model.use_neutral else ())
    if config.teacher.workdir:
      fields += ("heatmap",)
  return pipeline.InputSpec(fields=fields,
                            neutral_mode=config.data.neutral_mode,
                            seed=config.seed,
                            image_size=int(config.model.image_size))


def _maybe_split(config, split, sources):
  """An evaluation split, or None (with a warning) when it has no examples."""
  if not split:
    return None
  data = eval_lib.open_split(config, split, sources)
  if not data.index.example.any():
    logging.warning("split %r has no examples: not evaluated", split)
    return None
  return data


def _resume_or_init(config, setup, ckpt, batches, mesh) -> str:
  """Applies the resume order of the module docstring; returns its name."""
  resumed = _restore_newest_good(setup, ckpt, batches)
  if resumed is not None:
    return resumed
  kind = config.init_from.kind
  if kind == "checkpoint":
    info = state_lib.load_params_from_run(
        setup, config.init_from.path, config.init_from.checkpoint)
    return f"init_from checkpoint {config.init_from.path} {info}"
  if kind in ("timm", "vitpain"):
    info = state_lib.load_torch_weights(setup, config, mesh)
    return f"init_from {kind} {config.init_from.path} {info}"
  return "scratch"


def _restore_newest_good(setup, ckpt, batches) -> str | None:
  """Restores the newest step that reads; None when there is no step.

  A newer step that fails while an older one reads is damaged (the same
  config reads the older one): it is set aside (renamed, never deleted) and
  the run says so. When no step reads, nothing is touched and the newest
  step's CheckpointError is raised (e.g. a run of another config).
  """
  abstract = ckpt_lib.abstract(state_lib.checkpoint_tree(setup))
  failed = []
  for step in sorted(ckpt.all_steps(), reverse=True):
    try:
      tree = ckpt.restore(step, abstract, batches.checkpointable())
    except ckpt_lib.CheckpointError as e:
      failed.append((step, e))
      continue
    state_lib.set_from_checkpoint(setup, tree)
    for bad, e in failed:
      moved = ckpt.set_aside(bad)
      logging.warning("checkpoint step %d is damaged; set aside as %s and "
                      "resumed from step %d instead (%s)", bad, moved, step,
                      e)
    note = f" (damaged step {failed[0][0]} set aside)" if failed else ""
    return f"resumed from step {step}{note}"
  if failed:
    raise failed[0][1]
  return None


def _loop(config, setup, train_step, batches, ckpt, writer, evaluate,
          val_data, teacher, start, total, hooks) -> dict:
  """Steps until `total`, a SIGTERM, or a non-finite loss."""
  from tqdm.auto import tqdm

  tgroups = teacher.groups if teacher is not None else None
  bar = tqdm(total=total, initial=start, desc=config.progress_desc,
             dynamic_ncols=True,
             disable=not config.progress_bar or jax.process_index() > 0)
  pending = None  # (step, device metrics): checked one step late
  history: dict[str, list[float]] = {}
  last: dict[str, float] = {}
  last_val = None
  status = "done"
  with PreemptionGuard() as guard, bar:  # bar: closed on errors too
    for step in range(start + 1, total + 1):
      batch = next(batches)
      if step == start + 1:  # compile once, ahead of time, and report it
        train_step = _compile(train_step, setup, tgroups, batch)
      setup.train, metrics = train_step(setup.train, setup.consts, tgroups,
                                        batch)
      if pending is not None:  # host sync on the previous step only
        last = _account(pending, ckpt, history)
      pending = (step, metrics)
      for hook in hooks:
        hook(step, batch=batch, metrics=metrics, train_state=setup.train)
      bar.update(1)
      stop = guard.should_stop(step, every=10)
      is_eval = step == total or (
          config.eval_every and step % config.eval_every == 0)
      is_ckpt = step % config.checkpoint_every == 0 or step == total or stop
      if step % config.log_every == 0 or is_eval or is_ckpt:
        last = _account(pending, ckpt, history)
        pending = None
        writer.write(step, "train", _mean_and_reset(history))
        bar.set_postfix(loss=f"{last['loss']:.4f}")
      val = None
      if is_eval and val_data is not None:
        val = last_val = evaluate(val_data)
        writer.write(step, "val", val)
      if is_ckpt or is_eval:
        ckpt.save(step, state_lib.checkpoint_tree(setup),
                  batches.checkpointable(),
                  metrics={f"val/{k}": v for k, v in val.items()}
                  if val else None, force=True)
      if stop:
        status = "preempted"
        break
    if pending is not None:
      last = _account(pending, ckpt, history)
  ckpt.wait()
  writer.plot()
  return {"status": status, "step": int(jax.device_get(setup.train["step"])),
          "train": last, "val": last_val}


def _compile(train_step, setup, tgroups, batch):
  """AOT-compiles the step and logs its memory use and FLOPs."""
  compiled = train_step.lower(setup.train, setup.consts, tgroups,
                              batch).compile()
  try:
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    logging.info(
        "train step compiled: %.1f GFLOP/step; per device: arguments %.1f MiB,"
        " temporaries %.1f MiB", (cost or {}).get("flops", 0.0) / 1e9,
        getattr(mem, "argument_size_in_bytes", 0) / 2**20,
        getattr(mem, "temp_size_in_bytes", 0) / 2**20)
  except Exception:  # analyses are best-effort and backend dependent
    logging.info("train step compiled (no memory analysis on this backend)")
  return compiled


def _account(pending, ckpt, history) -> dict[str, float]:
  step, metrics = pending
  m = steps_lib.scalars(metrics)
  _check_finite(step, m, ckpt)
  for k, v in m.items():
    history.setdefault(k, []).append(v)
  return m


def _mean_and_reset(history: dict[str, list[float]]) -> dict[str, float]:
  out = {k: float(np.mean(v)) for k, v in history.items() if v}
  history.clear()
  return out


def _final_eval(config, setup, ckpt, evaluate, sources, writer) -> dict:
  """Test metrics of the best checkpoint (val was evaluated at the end)."""
  out: dict[str, Any] = {"best_step": ckpt.best_step()}
  step = int(jax.device_get(setup.train["step"]))
  if not config.data.test_split:
    return out
  best = out["best_step"]
  if best is not None and best != step:
    tree = ckpt.restore(best, ckpt_lib.abstract(
        state_lib.checkpoint_tree(setup)))
    state_lib.set_from_checkpoint(setup, tree)
  test_data = _maybe_split(config, config.data.test_split, sources)
  if test_data is None:
    return out
  out["test"] = evaluate(test_data)
  out["test_step"] = best if best is not None else step
  writer.write(out["test_step"], "test", out["test"])
  return out
