"""Per-frame predictions of a ViTPain-style model, with multi-shot references.

One ordered pass over a split through the trainer's grain pipeline
(`jaxpain.data.eval_dataset`), batches sharded over every device, one
jitted forward per batch. With N references per frame (multi-shot) the
model runs once per reference and the POST-SIGMOID outputs are averaged
(PSPI in (0, 1), then x16; AUs likewise), as in the released evaluation.

The model is any callable module `model(images, neutral=None) -> dict` with
'pspi' (B,) in (0, 1) and 'au' (B, 6), taking ImageNet-normalised float
images (`jaxpain.data.augment.prepare` does the resizing and normalising).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxpain import sharding as shd
from jaxpain.data import augment, pipeline, sources

PSPI_SCALE = 16.0


@dataclasses.dataclass(frozen=True)
class PredictSpec:
  """How to run inference.

  Attributes:
    image_size: model input side (images are resized on the device).
    num_references: neutral references per frame (N-shot); 0 runs the
      model without a reference.
    batch_size: global batch; rounded up to a multiple of the devices.
    seed: seeds the reference draws.
    num_workers: grain worker processes (0: main process).
    progress: show a progress bar.
  """

  image_size: int = 224
  num_references: int = 1
  batch_size: int = 64
  seed: int = 0
  num_workers: int = 0
  progress: bool = True


def _forward(graphdef, size: int, shots: int):
  """Jitted (state, images, neutral) -> (pspi in (0,1), au), shot-averaged."""

  def fwd(state, images, neutral):
    model = nnx.merge(graphdef, state)
    x = augment.prepare(images, size)
    if shots == 0:
      out = model(x, deterministic=True)
      return out["pspi"], out["au"]
    n = augment.prepare(neutral, size)
    if n.ndim == 4:
      n = n[:, None]
    pspi, au = 0.0, 0.0
    for s in range(n.shape[1]):  # static: one forward per reference
      out = model(x, n[:, s], deterministic=True)
      pspi, au = pspi + out["pspi"], au + out["au"]
    return pspi / n.shape[1], au / n.shape[1]

  return jax.jit(fwd)


def predict(model: nnx.Module, source, index: sources.SplitIndex,
            spec: PredictSpec) -> dict[str, np.ndarray]:
  """Predictions for every example record of `source`, in record order.

  Args:
    model: the model (an nnx.Module; dropout off during prediction).
    source: random-access records (image, au, pspi, identity).
    index: the source's `SplitIndex` (examples and references).
    spec: inference settings.

  Returns:
    'pspi_pred' (PSPI units), 'pspi_prob' (mean post-sigmoid), 'au_pred',
    'pspi_true', 'au_true', 'identity' and 'record' (source row), each with
    one row per example.
  """
  devices = jax.devices()
  batch = -(-spec.batch_size // len(devices)) * len(devices)
  mesh = jax.sharding.Mesh(np.array(devices), ("data",))
  sharding = NamedSharding(mesh, P("data"))
  shots = spec.num_references
  fields = ("image", "neutral") if shots else ("image",)
  ispec = pipeline.InputSpec(fields=fields, neutral_mode="random_view",
                             num_references=max(1, shots), seed=spec.seed)
  ds, n = pipeline.eval_dataset(source, index, ispec, batch, sharding,
                                num_workers=spec.num_workers)
  graphdef, state = nnx.split(model)
  state = jax.device_put(state, NamedSharding(mesh, P()))
  fwd = _forward(graphdef, spec.image_size, shots)
  cols: dict[str, list] = {k: [] for k in ("pspi", "au", "pspi_true",
                                           "au_true", "identity", "record",
                                           "mask")}
  labels = ("pspi", "au", "identity", "record", "mask")
  from tqdm.auto import tqdm  # noqa: PLC0415

  for host in tqdm(ds, total=-(-n // batch), desc="predict", unit="batch",
                   disable=not spec.progress):
    g = shd.to_global(host, sharding, batch)
    pspi, au = fwd(state, g["image"], g.get("neutral"))
    # Labels travel through the same global arrays, so every process ends
    # with the whole, consistently ordered batch.
    got = shd.to_host({"pred": pspi, "pred_au": au,
                       **{k: g[k] for k in labels}})
    for k, v in (("pspi", got["pred"]), ("au", got["pred_au"]),
                 ("pspi_true", got["pspi"]), ("au_true", got["au"]),
                 ("identity", got["identity"]), ("record", got["record"]),
                 ("mask", got["mask"])):
      cols[k].append(np.asarray(v))
  out = {k: np.concatenate(v) for k, v in cols.items()}
  keep = out.pop("mask") > 0
  out = {k: v[keep] for k, v in out.items()}
  assert len(out["pspi"]) == n, (len(out["pspi"]), n)
  prob = out.pop("pspi").astype(np.float64)
  return {"pspi_prob": prob, "pspi_pred": PSPI_SCALE * prob,
          "au_pred": out.pop("au").astype(np.float64), **out}


def model_input_size(model: nnx.Module, default: int = 224) -> int:
  """The image size a model was configured for (ViTPain keeps its cfg)."""
  cfg = getattr(model, "cfg", None)
  return int(getattr(cfg, "image_size", default))


def uses_reference(model: nnx.Module) -> bool:
  """Whether the model has a neutral-reference path."""
  cfg = getattr(model, "cfg", None)
  return bool(getattr(cfg, "use_neutral", True))

