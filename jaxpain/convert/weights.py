"""Load timm DINOv3 / released ViTPain weights into jaxpain, and export.

- `load_timm_backbone(target, source)`: a timm DINOv3 state dict (timm key
  names, e.g. from `vit_large_patch16_dinov3.sat493m`) into the frozen base
  of a `vit.ViT` or of every encoder of a `ViTPain`. LoRA and heads are left
  alone.
- `load_vitpain(model, source)`: the released Lightning checkpoint (keys
  under 'state_dict', reference.md §B.2) into a `ViTPain`.
- `export_vitpain(model)` / `export_backbone(vit)`: back to PyTorch names;
  `checkpoint_io.write_state_dict` writes them.

A file that does not fit raises `CheckpointError` naming the missing,
unexpected and shape-mismatched keys; nothing is written to the model then.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxpain.convert import keymap
from jaxpain.convert.checkpoint_io import CheckpointError, read_state_dict
from jaxpain.models import vit, vitpain

StateDict = dict[str, np.ndarray]


def _source(source) -> StateDict:
  if isinstance(source, (str, os.PathLike)):
    return read_state_dict(source)
  return {k: np.asarray(v) for k, v in source.items()}


def _variables(model: nnx.Module) -> dict:
  return {
    tuple(p): v for p, v in nnx.iter_graph(model)
    if isinstance(v, nnx.Variable)
  }


def _check_keys(entries, sd: StateDict, what: str) -> None:
  want = {e.key: e.torch_shape for e in entries}
  missing = sorted(set(want) - set(sd))
  unexpected = sorted(set(sd) - set(want))
  bad = [f'{k}: file {tuple(sd[k].shape)} != model {s}' for k, s in
         want.items() if k in sd and tuple(sd[k].shape) != s]
  if not (missing or unexpected or bad):
    return
  parts = [f'{what} does not fit the model.']
  for label, items in (('missing keys', missing),
                       ('unexpected keys', unexpected),
                       ('shape mismatches', bad)):
    if items:
      more = f' (+{len(items) - 10} more)' if len(items) > 10 else ''
      parts.append(f'{len(items)} {label}: {items[:10]}{more}')
  parts.append('Check the variant, num_registers, lora_rank, use_neutral '
               'and in_channels of the config against the file.')
  raise CheckpointError('\n'.join(parts))


def _assemble(entries, sd: StateDict, variables: dict) -> dict:
  """Parameter path -> full array; stacked slots filled, bases compared."""
  values, origin = {}, {}
  for e in entries:
    if e.path not in variables:
      raise CheckpointError(f'{e.key}: model has no parameter {e.path}')
    var = variables[e.path]
    v = e.to_jax(np.asarray(sd[e.key]).astype(var.dtype))
    if e.slot is not None:
      buf = values.setdefault(e.path, np.zeros(var.shape, var.dtype))
      buf[e.slot] = v
    elif e.path in values:
      if not np.array_equal(values[e.path], v):
        raise CheckpointError(
          f'{e.key} differs from {origin[e.path]}: the two encoders do not '
          'share one frozen base; build the model with shared_base=False')
    else:
      values[e.path], origin[e.path] = v, e.key
  return values


def _apply(model, entries, sd: StateDict, what: str) -> None:
  _check_keys(entries, sd, what)
  variables = _variables(model)
  values = _assemble(entries, sd, variables)
  for path, arr in values.items():  # validate all before writing any
    if arr.shape != variables[path].shape:
      raise CheckpointError(
        f'{path}: built {arr.shape}, model {variables[path].shape}')
  for path, arr in values.items():
    var = variables[path]
    var.set_value(jnp.asarray(arr, var.dtype))


def _encoders(target) -> list[vit.ViT]:
  if isinstance(target, vit.ViT):
    return [target]
  if isinstance(target, vitpain.ViTPain):
    return [e for e in (target.encoder, target.neutral_encoder)
            if e is not None]
  raise TypeError(f'cannot load a backbone into {type(target).__name__}')


def load_timm_backbone(target, source) -> None:
  """Loads timm DINOv3 weights into the frozen base(s) of `target`.

  Args:
    target: a `vit.ViT` or a `vitpain.ViTPain` (every encoder gets them).
    source: a state dict, or a `.safetensors` / torch file with timm key
      names (no classifier head). A 3-channel patch embedding is summed
      over RGB when the target takes 1-channel input.
  """
  sd = _source(source)
  for enc in _encoders(target):
    cfg = enc.cfg
    w = sd.get('patch_embed.proj.weight')
    if cfg.in_channels == 1 and w is not None and w.shape[1] == 3:
      sd = {**sd, 'patch_embed.proj.weight': w.sum(1, keepdims=True)}
    entries = keymap.backbone_entries(cfg, '', ())
    _apply(enc, entries, sd, 'timm DINOv3 checkpoint')


def load_vitpain(model: vitpain.ViTPain, source) -> None:
  """Loads a released-layout ViTPain state dict or `.ckpt` into `model`.

  With `shared_base=True` the two towers' frozen bases must be identical
  (the release loads both from one pretrained file); otherwise an error
  says to use `shared_base=False`.
  """
  sd = _source(source)
  _apply(model, keymap.vitpain_entries(model.cfg), sd,
         'ViTPain checkpoint')


def _export(model, entries) -> StateDict:
  variables = _variables(model)
  out = {}
  for e in entries:
    v = np.asarray(variables[e.path].get_value())
    if e.slot is not None:
      v = v[e.slot]
    out[e.key] = np.ascontiguousarray(e.to_torch(v))
  return out


def export_vitpain(model: vitpain.ViTPain) -> StateDict:
  """The model as a released-layout PyTorch state dict (numpy arrays)."""
  return _export(model, keymap.vitpain_entries(model.cfg))


def export_backbone(encoder: vit.ViT) -> StateDict:
  """The frozen base of one encoder with timm key names (no LoRA)."""
  return _export(encoder, keymap.backbone_entries(encoder.cfg, '', ()))


def vitpain_from_checkpoint(
  cfg: vitpain.ViTPainConfig, source, *, rngs: nnx.Rngs | None = None,
) -> vitpain.ViTPain:
  """Builds a ViTPain straight from a checkpoint, skipping random init.

  The model is traced abstractly (`nnx.eval_shape`), every parameter is
  filled from the file, and only the dropout stream is created for real;
  for L/16 this avoids compiling and running a 0.6 GB random init.

  Args:
    cfg: the model config matching the file.
    source: released-layout state dict or file (see `load_vitpain`).
    rngs: supplies the 'dropout' stream (default: seed 0).
  """
  model = nnx.eval_shape(lambda: vitpain.ViTPain(cfg, rngs=nnx.Rngs(0)))
  load_vitpain(model, source)
  model.dropout_rng = (rngs or nnx.Rngs(dropout=0)).dropout.fork()
  return _concrete(model)


def vit_from_timm(cfg: vit.ViTConfig, source) -> vit.ViT:
  """A LoRA-free backbone built straight from a timm file (no init)."""
  if cfg.lora is not None:
    raise ValueError('vit_from_timm builds the frozen base only; use '
                     'dataclasses.replace(cfg, lora=None)')
  enc = nnx.eval_shape(lambda: vit.ViT(cfg, rngs=nnx.Rngs(0)))
  load_timm_backbone(enc, source)
  return _concrete(enc)


def _concrete(model):
  abstract = [p for p, v in _variables(model).items()
              if isinstance(v.get_value(), jax.ShapeDtypeStruct)]
  if abstract:
    raise CheckpointError(f'parameters not set by the file: {abstract[:8]}')
  return model
