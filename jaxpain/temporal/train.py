"""`train(config, workdir)`: the temporal model on the project's machinery.

Sections in order: mesh; data (recordings, normalisation, grain windows
sharded by subject); model, optimizer and EMA created sharded
(jaxpain.sharding: logical names -> mesh axes by the config's rules); the
jitted, donating train step; checkpoint and resume; the loop.

Resume order: the latest checkpoint in `workdir/checkpoints` (parameters,
EMA, optimizer, step and the grain iterator, so the resumed run sees
exactly the batches the uninterrupted one would have), else a fresh start
from `config.seed`.

One step (diffusion forcing, reference.md §G.4): normalise the window and
fold frames into tokens; draw one sigma per token (per window for the
full-sequence baseline); with probability `clean_prefix_prob` make the
first 1..C tokens clean context (out of the loss); drop each conditioning
signal to its learned null with probability `cond_drop`; EDM loss weighted
per token (edm.py); AdamW with global-norm clipping; EMA of the weights.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from jaxpain import sharding as shd
from jaxpain.data import pipeline
from jaxpain.temporal import config as config_lib
from jaxpain.temporal import data as data_lib
from jaxpain.temporal import edm, model, tokens
from jaxpain.temporal.sampler import SamplerConfig
from jaxpain.train import checkpoint as ckpt_lib
from jaxpain.train import metrics_writer, model_lib, optim
from synth import sequences as sq

MODEL_JSON = "model.json"


# ------------------------------------------------------------- helpers ----


def window_spec(config) -> data_lib.WindowSpec:
  m = config.model
  return data_lib.WindowSpec(m.window * m.frames_per_token,
                             m.stim_history * m.frames_per_token,
                             config.data.stride)


def fit_normaliser(recs: data_lib.Recordings, sigma_data: float
                   ) -> tokens.Normaliser:
  return tokens.Normaliser.fit(recs.au, recs.stimulus, recs.expressiveness,
                               sq.AU_MAX, sigma_data)


def write_model_json(workdir: str, config, norm: tokens.Normaliser) -> dict:
  """What sampling needs: model, normaliser, sampler, diffusion settings."""
  info = {"model": config.model.to_dict(), "normaliser": norm.to_dict(),
          "sampler": config.sampler.to_dict(),
          "diffusion": config.diffusion.to_dict(), "seed": config.seed}
  path = os.path.join(workdir, MODEL_JSON)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(info, f, indent=2, default=list)
  os.replace(tmp, path)
  return info


def read_model_json(workdir: str) -> dict:
  path = os.path.join(workdir, MODEL_JSON)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: pass the workdir of a "
                            "temporal training run (python -m "
                            "jaxpain.temporal train)")
  with open(path) as f:
    return json.load(f)


def make_optimizer(cfg, total: int):
  sched = optim.schedule(cfg["lr"], cfg["end_lr"], total,
                         cfg["warmup_steps"])
  tx = optax.adamw(sched, b1=cfg["b1"], b2=cfg["b2"], eps=cfg["eps"],
                   weight_decay=cfg["weight_decay"])
  if cfg["clip_norm"]:
    tx = optax.chain(optax.clip_by_global_norm(cfg["clip_norm"]), tx)
  return tx, sched


# ---------------------------------------------------------------- loss ----


def batch_loss(net: model.PainDenoiser, batch: dict, key, dcfg: dict,
               context: int, train: bool = True):
  """Mean weighted EDM loss of a batch of windows (module docstring)."""
  norm, cfg = net.norm, net.cfg
  x0 = tokens.to_tokens(norm.au_to_model(batch["au"]), cfg.frames_per_token)
  b, w, _ = x0.shape
  k_sig, k_pre, k_len, k_drop, k_eps = jax.random.split(key, 5)
  if dcfg["noise_mode"] == "full":
    sigma = edm.sample_sigmas(k_sig, (b, 1), dcfg["p_mean"], dcfg["p_std"])
    sigma = jnp.broadcast_to(sigma, (b, w))
    mask = jnp.ones((b, w))
  else:
    sigma = edm.sample_sigmas(k_sig, (b, w), dcfg["p_mean"], dcfg["p_std"])
    p = dcfg["clean_prefix_prob"] if train else 0.0
    n_pre = jnp.where(jax.random.uniform(k_pre, (b,)) < p,
                      jax.random.randint(k_len, (b,), 1, context + 1), 0)
    is_pre = jnp.arange(w)[None, :] < n_pre[:, None]
    sigma = jnp.where(is_pre, 0.002, sigma)
    mask = (~is_pre).astype(jnp.float32)
    if train and dcfg.get("pyramid_prob", 0.0) > 0:
      k_pyr, k_use = jax.random.split(k_len)
      s_pyr, m_pyr = pyramid_sigmas(k_pyr, b, w, context, dcfg)
      use = (jax.random.uniform(k_use, (b, 1)) < dcfg["pyramid_prob"])
      sigma = jnp.where(use, s_pyr, sigma)
      mask = jnp.where(use, m_pyr, mask)
  p_drop = dcfg["cond_drop"] if train else 0.0
  drop = jax.random.uniform(k_drop, (b, 3)) < p_drop
  x = x0 + sigma[..., None] * jax.random.normal(k_eps, x0.shape)
  d = net(x, sigma, norm.stim_to_model(batch["stim"]),
          norm.expr_to_model(batch["expr"]), batch["emotion"], drop)
  per_token = edm.token_loss(d, x0, sigma, norm.sigma_data, dcfg["loss"])
  if dcfg.get("velocity_weight", 0.0) > 0:
    per_token = per_token + dcfg["velocity_weight"] * velocity_loss(
        d, x0, sigma, norm.sigma_data, cfg.frames_per_token, dcfg["loss"])
  return (per_token * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def velocity_loss(d, x0, sigma, sigma_data: float, fs: int, kind: str):
  """Per-token error of the frame-to-frame change, (B, T).

  Frame t's change AU(t) - AU(t-1) is charged to the token of frame t, so
  a jump between tokens (a seam) costs what it costs inside a token. A
  change across a token boundary is weighted by the SMALLER EDM weight of
  the two tokens: the noisier token's error must not be amplified by its
  cleaner neighbour's large weight. The first frame has no predecessor.
  """
  df, xf = tokens.from_tokens(d, fs), tokens.from_tokens(x0, fs)
  diff = (jnp.diff(df, axis=1) - jnp.diff(xf, axis=1)).astype(jnp.float32)
  err = jnp.square(diff) if kind == "l2" else jnp.abs(diff)
  lam = jnp.repeat(edm.loss_weight(sigma, sigma_data, kind), fs, axis=1)
  w = jnp.minimum(lam[:, 1:], lam[:, :-1])  # frames 1.. and their previous
  per_frame = jnp.pad(w * err.mean(-1), ((0, 0), (1, 0)))
  b, t = sigma.shape
  return per_frame.reshape(b, t, fs).mean(-1)


PYRAMID_U = (0.5, 1.0, 2.0, 4.0)


def pyramid_sigmas(key, b: int, w: int, context: int, dcfg: dict):
  """Per-token sigmas of a random moment of a pyramid rollout.

  A continuous version of schedule.pyramid: random context length c in
  [0, C], uncertainty u from PYRAMID_U, step m in [0, R]; token j >= c at
  level L + (j - c) u - m clipped to [0, L] (L = dcfg['pyramid_levels']),
  mapped to sigma by the Karras formula. Tokens at level 0 (context or
  finished) are clean (sigma_min) and left out of the loss, as the sampler
  never updates them.

  Returns:
    (sigma (b, w), loss mask (b, w)).
  """
  num = dcfg["pyramid_levels"]
  k_c, k_u, k_m = jax.random.split(key, 3)
  c = jax.random.randint(k_c, (b, 1), 0, context + 1)
  u = jnp.asarray(PYRAMID_U)[jax.random.randint(k_u, (b, 1), 0,
                                                len(PYRAMID_U))]
  steps = num + (w - 1 - c) * u
  m = jax.random.uniform(k_m, (b, 1)) * steps
  j = jnp.arange(w)[None, :]
  level = jnp.clip(num + (j - c) * u - m, 0.0, num)
  level = jnp.where(j < c, 0.0, level)
  active = level >= 1.0
  sigma = edm.karras_sigma(jnp.maximum(level, 1.0), num, 0.002, 80.0)
  return jnp.where(active, sigma, 0.002), active.astype(jnp.float32)


def make_train_step(graphdef, tx, sched, config, train_sh, batch_sh, repl):
  dcfg, seed = config.diffusion.to_dict(), config.seed
  context, decay = config.sampler.context, config.optim.ema_decay

  def step(train, batch):
    key = jax.random.fold_in(jax.random.key(seed), train["step"])

    def loss_fn(params):
      return batch_loss(nnx.merge(graphdef, params), batch, key, dcfg,
                        context)

    loss, grads = jax.value_and_grad(loss_fn)(train["params"])
    updates, opt_state = tx.update(grads, train["opt_state"],
                                   train["params"])
    params = optax.apply_updates(train["params"], updates)
    n = train["step"].astype(jnp.float32)
    d = jnp.minimum(decay, (1.0 + n) / (10.0 + n))
    ema = jax.tree.map(lambda e, p: d * e + (1 - d) * p, train["ema"],
                       params)
    new = {"step": train["step"] + 1, "params": params, "ema": ema,
           "opt_state": opt_state}
    metrics = {"loss": loss, "grad_norm": optax.global_norm(grads),
               "lr": sched(train["step"])}
    return new, metrics

  return jax.jit(step, in_shardings=(train_sh, batch_sh),
                 out_shardings=(train_sh, repl), donate_argnums=0)


def make_val_loss(graphdef, config, batch_sh):
  dcfg, context = config.diffusion.to_dict(), config.sampler.context

  @jax.jit
  def val(params, batch):
    key = jax.random.key(12345)  # the same noise at every evaluation
    return batch_loss(nnx.merge(graphdef, params), batch, key, dcfg,
                      context, train=False)

  return val


# --------------------------------------------------------------- setup ----


def create_state(config, norm, mesh, total: int):
  """Sharded {step, params, ema, opt_state} and what builds the steps."""
  rules = tuple(config.sharding_rules)
  mcfg = model.TemporalConfig.from_dict(config.model.to_dict())
  abs_model = nnx.eval_shape(lambda: model.build(mcfg, norm, config.seed))
  graphdef, abs_state = nnx.split(abs_model)
  p_sh = model_lib.to_nested(
      abs_state, lambda v: shd.state_shardings(v, rules, mesh))
  tx, sched = make_optimizer(config.optim.to_dict(), total)
  repl = shd.replicated(mesh)
  p_abs = model_lib.pure(abs_state)
  opt_sh = optim.state_shardings(jax.eval_shape(tx.init, p_abs), p_sh, repl)
  train_sh = {"step": repl, "params": p_sh, "ema": p_sh, "opt_state": opt_sh}

  def init():
    m = model.build(mcfg, norm, config.seed)
    params = model_lib.pure(nnx.state(m))
    return {"step": jnp.zeros((), jnp.int32), "params": params,
            "ema": jax.tree.map(jnp.copy, params),
            "opt_state": tx.init(params)}

  train = shd.sharded_init(init, train_sh, mesh)
  full_rules = shd.flax_rules(rules, abs_state)
  return graphdef, tx, sched, train, train_sh, full_rules


def _batches(config, recs, mesh, batch_sh):
  rows = shd.process_rows(config.batch_size, batch_sh)
  ds = data_lib.train_dataset(
      recs, window_spec(config), rows[1] - rows[0], config.seed,
      jax.process_index(), jax.process_count(), config.data.num_workers)
  return pipeline.GlobalBatches(ds, batch_sh, config.batch_size,
                                prefetch=config.data.prefetch)


# ---------------------------------------------------------------- train ---


def train(config: ml_collections.ConfigDict, workdir: str,
          stop_at: int | None = None) -> dict[str, Any]:
  """Trains (or resumes) in `workdir`; returns a summary dict.

  `stop_at` ends the run early at that step with a checkpoint, as a
  preemption would (the schedule still spans num_train_steps).
  """
  config = ml_collections.ConfigDict(config.to_dict())
  config_lib.validate(config)
  mesh = shd.create_mesh(config.mesh.shape, config.mesh.axes)
  shd.check_batch(config.batch_size, mesh, config.batch_axes)
  batch_sh = shd.batch_sharding(mesh, config.batch_axes)
  repl = shd.replicated(mesh)

  # ----------------------------------------------------------- data ----
  root = config.data.dir
  recs = data_lib.load_split(os.path.join(root, "train"))
  val_dir = os.path.join(root, "val")
  val = (data_lib.eval_windows(data_lib.load_split(val_dir),
                               window_spec(config), config.data.val_windows)
         if os.path.isdir(val_dir) else None)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  if os.path.isfile(os.path.join(workdir, MODEL_JSON)):
    norm = tokens.Normaliser.from_dict(
        read_model_json(workdir)["normaliser"])
  else:
    norm = fit_normaliser(recs, config.diffusion.sigma_data)
  write_model_json(workdir, config, norm)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config.to_dict(), f, indent=2, default=list)
  batches = _batches(config, recs, mesh, batch_sh)

  # ------------------------------------------ model, optimizer, EMA ----
  total = config.num_train_steps
  graphdef, tx, sched, state, train_sh, rules = create_state(
      config, norm, mesh, total)
  ckpt = ckpt_lib.Checkpointer(
      os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints,
      keep_best=1, best_metric="val/loss", best_mode="min",
      async_save=False)
  writer = _JsonlWriter(workdir)
  try:
    latest = ckpt.latest_step()
    if latest is not None:  # resume: state AND data position
      state = ckpt.restore(latest, {"train": ckpt_lib.abstract(state)},
                           batches.checkpointable())["train"]
    start = int(jax.device_get(state["step"]))
    logging.info("temporal: %d parameters, start at step %d of %d",
                 model_lib.count(state["params"]), start, total)
    with shd.mesh_context(mesh, rules):
      step_fn = make_train_step(graphdef, tx, sched, config, train_sh,
                                batch_sh, repl)
      val_fn = make_val_loss(graphdef, config, batch_sh)
      state, last = _loop(config, state, step_fn, val_fn, val, batches,
                          ckpt, writer, start, total, stop_at)
  finally:
    ckpt.close()
  writer.plot()
  return {"workdir": workdir, "step": int(jax.device_get(state["step"])),
          "resumed_from": latest, **last}


class _JsonlWriter:
  """metrics.jsonl (appended, flushed per line) and curves.png; the
  trainer's TensorBoard writer is left out on purpose (its import costs
  seconds of CPU per run, a lot for minute-long CPU trainings)."""

  def __init__(self, workdir: str):
    self.enabled = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.png = os.path.join(workdir, "curves.png")

  def write(self, step: int, split: str, metrics: dict) -> None:
    if self.enabled:
      row = {"step": int(step), "split": split,
             **{k: float(v) for k, v in metrics.items()}}
      with open(self.path, "a") as f:
        f.write(json.dumps(row) + "\n")

  def plot(self) -> None:
    if self.enabled and os.path.exists(self.path):
      metrics_writer.plot_curves(metrics_writer.read_jsonl(self.path),
                                 self.png)


def _val_loss(val_fn, params, val) -> float:
  return float(val_fn(params, {k: jnp.asarray(v) for k, v in val.items()}))


def _loop(config, state, step_fn, val_fn, val, batches, ckpt, writer,
          start, total, stop_at=None):
  from tqdm.auto import tqdm

  bar = tqdm(total=total, initial=start, desc="train",
             disable=not config.progress_bar or jax.process_index() > 0)
  last: dict[str, float] = {}
  end = min(total, stop_at) if stop_at else total
  for step in range(start + 1, end + 1):
    state, metrics = step_fn(state, next(batches))
    bar.update(1)
    is_log = step % config.log_every == 0 or step == end
    is_eval = step % config.eval_every == 0 or step == end
    is_ckpt = step % config.checkpoint_every == 0 or step == end
    if is_log or is_eval or is_ckpt:
      m = {k: float(v) for k, v in jax.device_get(metrics).items()}
      if not np.isfinite(m["loss"]):
        raise FloatingPointError(
            f"loss is {m['loss']} at step {step}; lower config.optim.lr. "
            f"The last good checkpoint is step {ckpt.latest_step()}.")
      writer.write(step, "train", m)
      bar.set_postfix(loss=f"{m['loss']:.4f}")
      last["train_loss"] = m["loss"]
    val_metrics = None
    if is_eval and val is not None:
      val_metrics = {"loss": _val_loss(val_fn, state["ema"], val)}
      writer.write(step, "val", val_metrics)
      last["val_loss"] = val_metrics["loss"]
    if is_ckpt:
      ckpt.save(step, {"train": state}, batches.checkpointable(),
                metrics={"val/loss": val_metrics["loss"]}
                if val_metrics else None, force=True)
  bar.close()
  return state, last


# ------------------------------------------------------------- loading ----


def load_model(workdir: str, which: str | int = "latest", ema: bool = True
               ) -> tuple[model.PainDenoiser, SamplerConfig, dict]:
  """A trained denoiser (EMA weights by default) and its sampler settings.

  Returns:
    (model, sampler config, model.json contents).
  """
  info = read_model_json(workdir)
  norm = tokens.Normaliser.from_dict(info["normaliser"])
  mcfg = model.TemporalConfig.from_dict(info["model"])
  # An abstract model: no parameter is initialised just to be overwritten.
  graphdef, abs_state = nnx.split(nnx.eval_shape(
      lambda: model.build(mcfg, norm, info.get("seed", 0))))
  ck = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                             read_only=True)
  try:
    step = ck.resolve(which)
    if step is None:
      raise ckpt_lib.CheckpointError(
          f"no checkpoint {which!r} in {ck.directory} (steps: "
          f"{ck.all_steps()}); train first")
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = model_lib.to_nested(abs_state, lambda v: jax.ShapeDtypeStruct(
        v.get_value().shape, v.get_value().dtype, sharding=device))
    group = "ema" if ema else "params"
    restored = ck.restore_partial(step, {"train": {group: target}})
  finally:
    ck.close()
  params = restored["train"][group]
  missing = [jax.tree_util.keystr(p) for p, x in
             jax.tree_util.tree_flatten_with_path(params)[0]
             if isinstance(x, jax.ShapeDtypeStruct)]
  if missing:
    raise ckpt_lib.CheckpointError(
        f"{workdir} step {step} lacks parameters {missing[:3]} of this "
        "model: it was trained with another version of "
        "jaxpain.temporal.model; retrain it")
  net = nnx.merge(graphdef, params)
  info["step"] = step
  return net, SamplerConfig.from_dict(info["sampler"]), info
