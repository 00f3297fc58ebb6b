"""Defaults of a temporal run; `configs/temporal*.py` start here.

One ml_collections.ConfigDict per run, every field commented. The model's
normalisation statistics are not config: the trainer fits them on the
training split and writes them, with the model and sampler settings, to
`workdir/model.json`, which is all `sample` and `evaluate` need.
"""

from __future__ import annotations

import ml_collections

from jaxpain.train import config as train_config
from synth import sequences as sq

NOISE_MODES = ("forcing", "full")


def base_config() -> ml_collections.ConfigDict:
  """The ~5 M-parameter diffusion-forcing model (reference.md §G)."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # model init, data order, noise and dropout streams

  c.data = ml_collections.ConfigDict(dict(
      dir="runs/temporal/data",  # `simulate --out`: train/ val/ test/
      stride=10,  # frames between window starts (released: 10)
      num_workers=0,  # grain worker processes
      prefetch=2,  # batches transferred to the devices ahead of the step
      val_windows=256,  # fixed validation windows for the val loss
  ))
  # What `python -m jaxpain.temporal simulate` makes (subject counts per
  # split, disjoint ids; programmes cycle over subjects).
  c.simulate = ml_collections.ConfigDict(dict(
      seed=0, train=48, val=4, test=8, programmes=("biovid", "joint",
                                                   "step"),
      duration_s=300.0, test_duration_s=120.0))

  # jaxpain.temporal.model.TemporalConfig fields.
  c.model = ml_collections.ConfigDict(dict(
      num_aus=sq.NUM_AUS,
      frames_per_token=4,  # fs (released: 4)
      window=16,  # W tokens = 64 frames (the released evaluation model)
      stim_history=8,  # stimulus look-back per token (tokens)
      variant="base",  # 'tiny' | 'small' | 'base' (model.VARIANTS)
      mlp_ratio=4,
      dtype="float32",  # compute dtype ('bfloat16' on accelerators)
  ))
  # jaxpain.temporal.sampler.SamplerConfig fields (inference only).
  c.sampler = ml_collections.ConfigDict(dict(
      context=4, num_levels=16, uncertainty=1.0, sigma_min=0.002,
      sigma_max=80.0, rho=7.0, guidance=(0.25, 0.5, 1.0),
      # The context is shown at sigma 0.05 rather than clean: on held-out
      # tuning subjects of seed 0 (docs/temporal.md) PainSim 0.50 against
      # 0.67 clean, PainCorr unchanged; sigma_min sits far below the
      # training distribution of ln sigma.
      replace_context=False, context_sigma=0.05))

  c.diffusion = ml_collections.ConfigDict(dict(
      noise_mode="forcing",  # 'forcing': sigma per token | 'full': per window
      sigma_data=0.5,  # data scale after normalisation (tokens.Normaliser)
      p_mean=-1.2, p_std=1.2,  # ln sigma ~ N(p_mean, p_std^2)
      loss="l2",  # 'l2' | 'l1', weighted per token (edm.py)
      cond_drop=0.1,  # each signal replaced by its null with this prob.
      # With this probability a window's first 1..context tokens are clean
      # (sigma_min) and left out of the loss: the situation of streaming,
      # where the context is clean.
      clean_prefix_prob=0.25,
      # With this probability a window's sigmas are a random moment of a
      # pyramid rollout (train.pyramid_sigmas) instead of independent
      # draws: the configurations the streaming sampler actually visits.
      pyramid_prob=0.5,
      pyramid_levels=16,
      # Weight of the frame-to-frame change loss (train.velocity_loss),
      # which charges jumps between tokens like jumps inside them.
      velocity_weight=1.0,
  ))

  c.optim = ml_collections.ConfigDict(dict(
      lr=4e-4,  # released AdamW lr
      end_lr=4e-5,  # cosine end
      warmup_steps=500,
      weight_decay=0.01, b1=0.9, b2=0.999, eps=1e-8,
      clip_norm=1.0,
      ema_decay=0.999,  # EMA of parameters (sampling uses the EMA)
  ))

  c.batch_size = 64  # global
  c.num_train_steps = 20000
  c.log_every = 50
  c.eval_every = 1000  # validation loss; also at the end
  c.checkpoint_every = 1000
  c.keep_checkpoints = 2
  c.progress_bar = True

  c.mesh = ml_collections.ConfigDict(dict(
      shape=(-1, 1, 1), axes=("data", "fsdp", "tensor")))
  c.batch_axes = ("data", "fsdp")
  c.sharding_rules = train_config.DEFAULT_RULES
  return c


def apply_small(c: ml_collections.ConfigDict) -> None:
  """The end-to-end job's setting: a ~1 M model trained in minutes."""
  c.model.variant = "small"
  c.batch_size = 32
  c.num_train_steps = 4000
  c.optim.lr = 1e-3
  c.optim.end_lr = 1e-4
  c.optim.warmup_steps = 100
  c.optim.ema_decay = 0.995
  c.eval_every = 500
  c.checkpoint_every = 500
  c.log_every = 50
  # 256 training subjects, not 32: expressiveness is a weak, subject-level
  # predictor of the response level, and 32 subjects left the model
  # guessing for the tails (on seed 0's tuning split, 256 halved PainDist
  # at the same number of steps; docs/temporal.md). Simulating them takes
  # seconds; the training cost is per step, not per subject.
  c.simulate.update(dict(train=256, val=2, test=16, duration_s=240.0,
                         test_duration_s=60.0))


def apply_runlocal(c: ml_collections.ConfigDict) -> None:
  """Seconds-long settings (tests, a first try): the tiny model, a small
  window, 300 steps on 12 subjects; enough to stay within the simulator's
  per-minute bounds on a one-minute rollout (tests/.../drift_test.py)."""
  c.model.variant = "tiny"
  c.model.window = 8
  c.model.stim_history = 4
  c.sampler.context = 2
  c.sampler.num_levels = 8
  c.batch_size = 16
  c.num_train_steps = 300
  c.optim.lr = 2e-3
  c.optim.end_lr = 2e-4
  c.optim.warmup_steps = 20
  c.optim.ema_decay = 0.99
  c.log_every = 50
  c.eval_every = 150
  c.checkpoint_every = 150
  c.data.val_windows = 16
  c.progress_bar = False
  c.simulate.update(dict(train=12, val=1, test=2, duration_s=40.0,
                         test_duration_s=20.0))


# One-string override -> (config path, type).
OVERRIDES = {
    "variant": ("model.variant", str), "data": ("data.dir", str),
    "workers": ("data.num_workers", int), "lr": ("optim.lr", float),
    "levels": ("sampler.num_levels", int),
    "u": ("sampler.uncertainty", float),
    "ctx_sigma": ("sampler.context_sigma", float),
    "steps": ("num_train_steps", int), "batch": ("batch_size", int),
    "seed": ("seed", int),
    "mesh": ("mesh.shape", lambda v: tuple(int(x) for x in v.split("."))),
}


def apply_args(c: ml_collections.ConfigDict, args: dict) -> None:
  """One-string overrides: runlocal, small, then any OVERRIDES key, e.g.
  'small,seed=1,steps=500,mesh=2.2.1'."""
  unknown = set(args) - set(OVERRIDES) - {"runlocal", "small"}
  if unknown:
    raise ValueError(f"unknown config args {sorted(unknown)}; known: "
                     f"{sorted(set(OVERRIDES) | {'runlocal', 'small'})}")
  if args.get("runlocal"):
    apply_runlocal(c)
  if args.get("small"):
    apply_small(c)
  for key, (path, cast) in OVERRIDES.items():
    if key in args:
      *groups, field = path.split(".")
      node = c
      for g in groups:
        node = node[g]
      node[field] = cast(str(args[key]))


def validate(c: ml_collections.ConfigDict) -> None:
  """Raises ValueError for combinations that cannot run."""
  if c.diffusion.noise_mode not in NOISE_MODES:
    raise ValueError(f"diffusion.noise_mode {c.diffusion.noise_mode!r} not "
                     f"in {NOISE_MODES}")
  if c.diffusion.noise_mode == "full" and not c.sampler.replace_context:
    raise ValueError("a full-sequence model ('full') continues a sequence by"
                     " re-noising its context: set sampler.replace_context")
  if not 0 < c.sampler.context < c.model.window:
    raise ValueError(f"sampler.context {c.sampler.context} must be in "
                     f"(0, model.window {c.model.window})")
  if c.batch_size <= 0 or c.num_train_steps <= 0:
    raise ValueError("batch_size and num_train_steps must be positive")
