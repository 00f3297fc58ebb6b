"""The shared default config; `configs/*.py` start from it and override.

One `ml_collections.ConfigDict` describes a run. Every field has a comment;
`validate` checks the combinations a config file can get wrong, before any
device work starts.
"""

from __future__ import annotations

import difflib
import importlib.util
import os

import ml_collections

from synth.cli_errors import UserError

# Logical axis (model annotation) -> mesh axes. Pure FSDP + tensor parallel
# in the maxtext spirit: embeddings split over 'fsdp', MLP and heads over
# 'tensor'; the small LoRA/head axes stay replicated. Names the model uses
# but that are not listed here are replicated (jaxpain.sharding).
DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("qkv", None),
    ("kv", None),
    ("patch", None),
    ("lora_rank", None),
    ("adapter", None),
    ("au", None),
    ("norm", None),
)


# Sharding presets: the mesh inside one TPU slice (across slices the 'data'
# axis runs over DCN, jaxpain.sharding.create_mesh); the rules above apply
# to all three. 'dp' replicates parameters, 'fsdp' splits them (and the
# batch) over every chip, 'fsdp_tp' also splits heads and MLP over a
# 'tensor' axis of 4 chips (2 when the heads do not divide by 4).
SHARDINGS = ("dp", "fsdp", "fsdp_tp")
# The choice per model size, from the ahead-of-time TPU compile table
# (docs/benchmarks.md §6, `python -m jaxpain.aot`): on v5p-128 at 512 pairs
# dp has the highest MFU for every size (only LoRA and head gradients
# cross chips; fsdp gathers the frozen base in every block, fsdp_tp also
# reshards activations). g/14 under dp needs ~1.7 GiB per pair per chip:
# on 16 GiB v5e chips pass sharding=fsdp for more than ~6 pairs per chip.
DEFAULT_SHARDING = {"S/16": "dp", "B/16": "dp", "L/16": "dp",
                    "g/14": "dp"}


def apply_sharding(c: ml_collections.ConfigDict, name: str | None = None
                   ) -> None:
  """Sets c.sharding and c.mesh.shape from a preset (default: per size)."""
  from jaxpain.models import vit

  name = name or DEFAULT_SHARDING.get(c.model.variant, "dp")
  if name not in SHARDINGS:
    raise ConfigError(f"config arg sharding={name!r}: pass one of "
                      f"{', '.join(SHARDINGS)}")
  heads = vit.decode_variant(c.model.variant).heads
  tensor = 4 if heads % 4 == 0 else 2
  c.sharding = name
  c.mesh.shape = {"dp": (-1, 1, 1), "fsdp": (1, -1, 1),
                  "fsdp_tp": (1, -1, tensor)}[name]


def base_config() -> ml_collections.ConfigDict:
  """Defaults: the released synthetic pretraining recipe (reference.md §B.2)."""
  c = ml_collections.ConfigDict()
  c.seed = 42  # model init, shuffle, augmentation and dropout streams
  # PRNG of the dropout masks: 'threefry' | 'rbg' | 'unsafe_rbg' (faster
  # masks on CPU and TPU; see jaxpain.models.layers.rekey).
  c.dropout_prng = "threefry"
  c.mode = "student"  # 'teacher' (heatmaps) | 'student' (RGB [+ teacher])

  # Model: fields of jaxpain.models.vitpain.ViTPainConfig, plus `name`.
  c.model = ml_collections.ConfigDict(dict(
      name="vitpain",  # registry key (jaxpain.train.model_lib)
      variant="L/16",  # 'mu/16' | 'Ti/16' | 'S/16' | 'B/16' | 'L/16'
      image_size=224,
      patch_size=16,
      lora_rank=8, lora_alpha=16.0, lora_dropout=0.1,
      head_dropout=0.5,
      cross_attn_heads=8,
      use_neutral=True,  # the neutral-reference cross-attention
      official_compat=False,  # released token path (no RoPE / registers)
      shared_base=True,
      dtype="bfloat16",  # compute; parameters stay float32
      param_dtype="float32",
      attention_impl=None,  # None | 'xla' | 'cudnn'
      remat=False,
      scan_blocks=True,  # blocks as one lax.scan (False: unrolled)
      in_channels=3,
      # Also train the backbone's base weights. Only for training from
      # scratch (no pretrained DINOv3): a frozen RANDOM base with LayerScale
      # 1e-5 passes almost no image signal to the heads.
      train_base=False,
      # Fresh-weight init: 'released' (DINOv3 + torch heads; pretrained
      # backbones) | 'scratch' (variance-preserving; no pretrained weights).
      init_scheme="released",
  ))

  # Data: a TFDS dataset (or a name given to data.register_source).
  c.data = ml_collections.ConfigDict(dict(
      name="3dpain/full",
      data_dir=None,  # None: $TFDS_DATA_DIR or ~/tensorflow_datasets
      train_split="train",
      val_split="validation",
      test_split="test",
      neutral_mode="random_view",  # released: random view each access
      eval_neutral_mode="same_view",
      eval_num_references=1,  # N > 1: multi-shot evaluation
      num_workers=2,  # grain worker processes (0: main process)
      worker_buffer=2,
      device_prefetch=2,  # batches transferred ahead of the step
  ))
  c.augment = ml_collections.ConfigDict(dict(
      enabled=True,
      flip_prob=0.3, rotate_deg=5.0, translate=0.1, scale=(0.9, 1.1),
      brightness=0.3, contrast=0.3, saturation=0.2, hue=0.1,
      blur_sigma=(0.1, 1.0), blur_kernel=3,
  ))

  # Loss (released): w_p MSE(pspi, PSPI/16) + w_au MSE(au, AU) + w_bin BCE.
  c.loss = ml_collections.ConfigDict(dict(
      pspi_weight=1.0, au_weight=1.0, binary_weight=1.0))

  # Teacher-student distillation (student mode only).
  c.teacher = ml_collections.ConfigDict(dict(
      workdir=None,  # a finished teacher run; None: no teacher
      checkpoint="best",  # 'best' | 'latest' | a step number
      required=False,  # student_distill: refuse to run without a teacher
  ))
  c.distill = ml_collections.ConfigDict(dict(
      feature_weight=1.0,  # on CLS' features ('features' output)
      feature_loss="cosine",  # 'cosine' | 'mse'
      output_weight=1.0,  # MSE to the teacher's PSPI and AU outputs
  ))

  # Optimiser: AdamW, two groups, cosine schedule, global-norm clipping.
  c.optim = ml_collections.ConfigDict(dict(
      lr=1e-4,  # heads, cross-attention (and all non-LoRA trainables)
      lora_lr_mult=0.1,  # LoRA group: 0.1 x lr (released)
      end_lr=1e-6,  # both groups anneal to this (released eta_min)
      warmup_steps=0,
      weight_decay=0.1,
      b1=0.9, b2=0.999, eps=1e-8,
      clip_norm=1.0,
  ))

  c.batch_size = 48  # global, over all processes
  c.eval_batch_size = 64
  c.num_epochs = 150.0  # used when num_train_steps is None
  c.num_train_steps = None
  c.log_every = 50
  c.eval_every = 1000  # steps; 0: only at the end
  c.checkpoint_every = 1000  # steps; also at every eval and at the end
  c.keep_checkpoints = 2  # latest N kept for resume
  c.keep_best = 1  # plus the best N by best_metric
  c.best_metric = "val/mae"
  c.best_mode = "min"
  c.async_checkpoints = True
  c.progress_bar = True
  c.progress_desc = "train"  # label of the progress bar

  # Initialisation when the workdir has no checkpoint (resume always wins).
  c.init_from = ml_collections.ConfigDict(dict(
      # 'none' | 'checkpoint' (a run's workdir) | 'timm' (DINOv3 backbone
      # file: the released pretraining start) | 'vitpain' (released ViTPain
      # .ckpt / state dict)
      kind="none",
      path=None,
      checkpoint="best",  # for kind='checkpoint'
  ))

  # Mesh per TPU slice (or host set). `sharding` names the preset that set
  # it: configs/*.py get the default for their model size from apply_args
  # (DEFAULT_SHARDING); `sharding=` / `mesh=` override it.
  c.sharding = "dp"
  c.mesh = ml_collections.ConfigDict(dict(
      shape=(-1, 1, 1), axes=("data", "fsdp", "tensor"),
      dcn_axis="data"))  # the axis laid across TPU slices (multi-slice)
  c.batch_axes = ("data", "fsdp")
  c.sharding_rules = DEFAULT_RULES

  # Multi-host: set all three, or leave None (single process / auto-detect).
  c.distributed = ml_collections.ConfigDict(dict(
      coordinator_address=None, num_processes=None, process_id=None,
      initialize=False))
  return c


def apply_runlocal(c: ml_collections.ConfigDict) -> None:
  """Shrinks a config for a CPU smoke run (the `runlocal` variants)."""
  c.model.variant = "mu/16"
  c.model.image_size = 32
  c.model.cross_attn_heads = 2
  c.model.dtype = "float32"
  c.model.train_base = True  # no pretrained weights on a smoke run
  c.model.init_scheme = "scratch"
  c.optim.lr = 1e-3
  c.data.name = "3dpain/tiny"
  c.data.num_workers = 0
  c.batch_size = 8
  c.eval_batch_size = 8
  c.num_train_steps = 20
  c.log_every = 5
  c.eval_every = 10
  c.checkpoint_every = 10


def parse_arg(arg: str | None) -> dict[str, str | bool]:
  """'runlocal,variant=S/16' -> {'runlocal': True, 'variant': 'S/16'}."""
  out: dict[str, str | bool] = {}
  for part in (arg or "").split(","):
    part = part.strip()
    if not part:
      continue
    key, eq, value = part.partition("=")
    out[key.strip()] = value.strip() if eq else True
  return out


def apply_args(c: ml_collections.ConfigDict, args: dict) -> None:
  """Common one-string overrides shared by all configs/*.py files.

  runlocal            CPU smoke settings (apply_runlocal)
  variant=S/16        backbone size
  size=64             model image size
  patch=8             patch size
  data=toy/30         dataset name (TFDS name or a registered source)
  data_dir=PATH       TFDS data folder
  steps=N             number of train steps
  batch=N             global batch size (also eval batch)
  workers=N           grain worker processes
  sharding=fsdp       'dp' | 'fsdp' | 'fsdp_tp' (default: by variant)
  mesh=2.2.2          mesh shape ('.'-separated; one entry may be -1)
  teacher=DIR         teacher run workdir (student distillation)
  neutral=0|1         neutral reference on/off
  lr=1e-3             base learning rate
  train_base=0|1      also train the backbone base weights
  init_scheme=NAME    'released' | 'scratch' (fresh-weight init)
  init=DIR            init_from another run's checkpoint (parameters)
  timm=FILE           init_from timm DINOv3 weights (the frozen base)
  torch=FILE          init_from a released ViTPain checkpoint
  seed=N
  """
  known = {"runlocal", "steps", "batch", "mesh", "neutral", "seed",
           "sharding", "train_base", "init", "timm", "torch", *_SIMPLE_ARGS}
  for key in sorted(set(args) - known):
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"unknown config arg {key!r}: {hint}known: "
                      f"{', '.join(sorted(known))}")
  if args.get("runlocal"):
    apply_runlocal(c)
  for key, (group, field, cast) in _SIMPLE_ARGS.items():
    if key in args:
      c[group][field] = _cast(key, args[key], cast)
  if "variant" in args and "patch" not in args:
    c.model.patch_size = _cast("variant", str(args["variant"]).split("/")[-1],
                               int)
  apply_sharding(c, args.get("sharding"))
  if "steps" in args:
    c.num_train_steps = _cast("steps", args["steps"], int)
  if "batch" in args:
    c.batch_size = c.eval_batch_size = _cast("batch", args["batch"], int)
  if "mesh" in args:
    c.mesh.shape = tuple(_cast("mesh", x, int)
                         for x in str(args["mesh"]).split("."))
  if "neutral" in args:
    c.model.use_neutral = _bool("neutral", args["neutral"])
  if "seed" in args:
    c.seed = _cast("seed", args["seed"], int)
  for key, kind in (("init", "checkpoint"), ("timm", "timm"),
                    ("torch", "vitpain")):
    if key in args:
      c.init_from.update(dict(kind=kind, path=str(args[key])))
  if "train_base" in args:
    c.model.train_base = _bool("train_base", args["train_base"])


_SIMPLE_ARGS = {"variant": ("model", "variant", str),
                "size": ("model", "image_size", int),
                "patch": ("model", "patch_size", int),
                "data": ("data", "name", str),
                "data_dir": ("data", "data_dir", str),
                "workers": ("data", "num_workers", int),
                "teacher": ("teacher", "workdir", str),
                "init_scheme": ("model", "init_scheme", str),
                "lr": ("optim", "lr", float)}
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string"}


def _cast(key: str, value, cast):
  """cast(value), or a ConfigError naming the arg and the expected type."""
  try:
    return cast(value)
  except (TypeError, ValueError):
    raise ConfigError(f"config arg {key}={value!r} must be "
                      f"{_TYPE_NAMES[cast]}") from None


def _bool(key: str, value) -> bool:
  text = str(value).lower()
  if text not in ("0", "1", "true", "false"):
    raise ConfigError(f"config arg {key}={value!r} must be 0 or 1")
  return text in ("1", "true")


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """'configs/finetune.py:runlocal' -> that file's get_config('runlocal').

  As ml_collections' --config flag calls it; ConfigError for a missing
  file (a config arg's own ConfigError passes through).
  """
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise ConfigError(f"config file {path} not found; pass one of "
                      "configs/*.py, e.g. configs/teacher.py:runlocal")
  mod_spec = importlib.util.spec_from_file_location("_jaxpain_config", path)
  module = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


class ConfigError(UserError):
  """A config value or combination that cannot run."""


def validate(c: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for combinations that cannot run."""
  if c.mode not in ("teacher", "student"):
    raise ConfigError(f"config.mode must be 'teacher' or 'student': {c.mode}")
  if c.mode == "teacher" and c.model.use_neutral:
    raise ConfigError("a heatmap teacher has no neutral reference: set "
                      "config.model.use_neutral=False")
  if c.mode == "student" and c.teacher.required and not c.teacher.workdir:
    raise ConfigError("this config distils from a teacher: pass "
                      "teacher=<teacher workdir> (config.teacher.workdir)")
  if c.mode == "teacher" and c.teacher.workdir:
    raise ConfigError("a teacher run cannot itself have a teacher")
  if c.distill.feature_loss not in ("cosine", "mse"):
    raise ConfigError(f"distill.feature_loss {c.distill.feature_loss!r} not "
                      "in ('cosine', 'mse')")
  kinds = ("none", "checkpoint", "timm", "vitpain")
  if c.init_from.kind not in kinds:
    raise ConfigError(f"init_from.kind {c.init_from.kind!r} not in {kinds}")
  if c.init_from.kind != "none" and not c.init_from.path:
    raise ConfigError("init_from.path is required for "
                      f"init_from.kind={c.init_from.kind!r}")
  if c.model.init_scheme not in ("released", "scratch"):
    raise ConfigError(f"model.init_scheme {c.model.init_scheme!r} not in "
                      "('released', 'scratch')")
  if c.dropout_prng not in ("threefry", "rbg", "unsafe_rbg"):
    raise ConfigError(f"dropout_prng {c.dropout_prng!r} not in "
                      "('threefry', 'rbg', 'unsafe_rbg')")
  if c.best_mode not in ("min", "max"):
    raise ConfigError(f"best_mode must be 'min' or 'max': {c.best_mode}")
  _check_counts(c)
  if list(c.mesh.shape).count(-1) > 1:
    raise ConfigError(f"mesh.shape {tuple(c.mesh.shape)}: at most one -1")


# (field, smallest allowed value); None is allowed where noted in the field.
_COUNTS = (
    ("batch_size", 1), ("eval_batch_size", 1), ("num_train_steps", 1),
    ("log_every", 1), ("eval_every", 0), ("checkpoint_every", 1),
    ("keep_checkpoints", 1), ("keep_best", 0), ("data.num_workers", 0),
    ("data.worker_buffer", 1), ("data.device_prefetch", 0),
    ("data.eval_num_references", 1), ("model.image_size", 1),
    ("model.patch_size", 1),
)


def _check_counts(c: ml_collections.ConfigDict) -> None:
  """ConfigError for a count below its minimum (steps=-3 would train 0)."""
  for name, low in _COUNTS:
    value = c
    for part in name.split("."):
      value = value[part]
    if name == "num_train_steps" and value is None:
      continue  # num_epochs decides
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
      raise ConfigError(f"config.{name} must be an integer >= {low}, got "
                        f"{value!r}")
  if c.num_train_steps is None and not c.num_epochs > 0:
    raise ConfigError(f"config.num_epochs must be > 0, got {c.num_epochs!r}")
  bad = [x for x in c.mesh.shape if x == 0 or x < -1]
  if bad:
    raise ConfigError(f"config.mesh.shape {tuple(c.mesh.shape)}: sizes must "
                      "be positive (or one -1 for the rest)")
