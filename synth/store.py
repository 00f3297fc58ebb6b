"""Writing, resuming and reading synthesised datasets on disk.

Layout of `out_dir`:

  synth_config.json            the SynthConfig (format version 1)
  identities/id00012/          one finished identity:
    expr00_view0.png ...       images (png or jpg), expression-major
    expr01_heatmap.png ...     one single-channel heatmap per pain expression
    labels.json                AUs, PSPI, views, demographics, lighting

An identity is generated into `identities/.tmp-id00012-*` and renamed into
place with one `os.replace`, so a folder named `idNNNNN` is always complete.
A rerun skips finished identities and deletes leftover temp folders of a
killed run; a lock file keeps two runs from writing the same folder. A rerun
must use the same configuration (only `num_identities` may change).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import fcntl
import json
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator

import numpy as np
from PIL import Image

from synth import cli_errors, pipeline, records
from synth.config import ConfigError, SynthConfig

CONFIG_FILE = "synth_config.json"
FORMAT_VERSION = 1
_ID_DIR = re.compile(r"^id(\d{5,})$")


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


# tempfile creates private (0600/0700) entries; finished ones get the usual
# permissions, as if made by open() / os.makedirs().
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


class OutputDirError(ConfigError):
  """The output folder cannot be used (unwritable, other config, busy)."""


def identity_dirname(index: int) -> str:
  return f"id{index:05d}"


def image_name(expression: int, view: int, ext: str) -> str:
  return f"expr{expression:02d}_view{view}.{ext}"


def heatmap_name(expression: int) -> str:
  return f"expr{expression:02d}_heatmap.png"


# ------------------------------------------------------------------ writing


def _encode(path: str, array: np.ndarray, config: SynthConfig) -> None:
  img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
  if path.endswith(".jpg"):
    img.save(path, quality=config.jpeg_quality)
  else:
    img.save(path, compress_level=config.png_compress_level)


def labels_of(config: SynthConfig, recs: list[records.ImageRecord]) -> dict:
  """The JSON labels of one identity's records."""
  first = recs[0]
  expressions = []
  for rec in recs:
    if rec.view:
      continue
    expressions.append(
      {
        "expression": rec.expression,
        "au": {
          n: int(a) for n, a in zip(records.AU_NAMES, rec.au, strict=True)
        },
        "pspi": int(rec.pspi),
        "images": [
          image_name(rec.expression, v, config.image_ext)
          for v in range(config.num_views)
        ],
        "heatmap": heatmap_name(rec.expression) if rec.expression else None,
      }
    )
  light = pipeline.lighting_of(config, first.identity)
  return {
    "format_version": FORMAT_VERSION,
    "identity": first.identity,
    "seed": first.seed,
    "demographics": dataclasses.asdict(first.demographics),
    "lighting": dataclasses.asdict(light),
    "views": [list(v) for v in config.views],
    "expressions": expressions,
  }


def write_identity(
  config: SynthConfig, out_dir: str, index: int
) -> dict[str, float]:
  """Generates identity `index` and moves it into place atomically.

  Returns:
    Seconds per pipeline stage for this identity (see pipeline.Timer).
  """
  timings: dict[str, float] = {}
  recs = pipeline.generate_identity(config, index, timings)
  parent = os.path.join(out_dir, "identities")
  final = os.path.join(parent, identity_dirname(index))
  with pipeline.Timer(timings)("encode+write"):
    tmp = tempfile.mkdtemp(
      prefix=f".tmp-{identity_dirname(index)}-", dir=parent
    )
    try:
      os.chmod(tmp, DIR_MODE)
      _write_files(config, tmp, recs)
      os.replace(tmp, final)
    except OSError:
      shutil.rmtree(tmp, ignore_errors=True)
      if not os.path.isdir(final):
        raise
      # else another run finished this identity first: keep theirs
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
  return timings


def _write_files(config, folder, recs) -> None:
  for rec in recs:
    name = image_name(rec.expression, rec.view, config.image_ext)
    _encode(os.path.join(folder, name), rec.image, config)
    if rec.expression and rec.view == 0:
      name = heatmap_name(rec.expression)
      _encode(os.path.join(folder, name), rec.heatmap, config)
  with open(os.path.join(folder, "labels.json"), "w", encoding="utf-8") as f:
    json.dump(labels_of(config, recs), f, indent=1)


# -------------------------------------------------------------- the dataset


def check_output_dir(out_dir: str) -> None:
  """Raises OutputDirError if `out_dir` cannot be created or written."""
  cli_errors.check_output_dir(out_dir, "--out", OutputDirError)


def finished_identities(out_dir: str) -> set[int]:
  """Indices of the complete identity folders in `out_dir`."""
  parent = os.path.join(out_dir, "identities")
  if not os.path.isdir(parent):
    return set()
  return {
    int(m.group(1)) for name in os.listdir(parent) if (m := _ID_DIR.match(name))
  }


def _prepare(config: SynthConfig, out_dir: str) -> None:
  """Creates the folder, checks or writes its config, removes temp dirs."""
  path = os.path.join(out_dir, CONFIG_FILE)
  stored = read_config(out_dir) if os.path.exists(path) else None
  if stored is not None:
    old, new = stored.output_fingerprint(), config.output_fingerprint()
    diff = sorted(k for k in new if old.get(k) != new.get(k))
    if diff:
      raise OutputDirError(
        f"{out_dir!r} holds a dataset made with a different configuration "
        f"(differs in: {', '.join(diff)}); resume with the same settings "
        "or choose another --out"
      )
    if stored.num_identities >= config.num_identities:
      config = stored
  blob = {"format_version": FORMAT_VERSION, "config": config.to_dict()}
  fd, tmp = tempfile.mkstemp(prefix=".tmp-config-", dir=out_dir)
  os.chmod(tmp, FILE_MODE)
  with os.fdopen(fd, "w", encoding="utf-8") as f:
    json.dump(blob, f, indent=1)
  os.replace(tmp, path)
  parent = os.path.join(out_dir, "identities")
  os.makedirs(parent, exist_ok=True)
  for name in os.listdir(parent):
    if name.startswith(".tmp-"):
      shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def read_config(out_dir: str) -> SynthConfig:
  """The SynthConfig a dataset folder was written with."""
  path = os.path.join(out_dir, CONFIG_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      blob = json.load(f)
    return SynthConfig.from_dict(blob["config"])
  except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
    raise OutputDirError(f"cannot read {path!r}: {e}") from None


@dataclasses.dataclass
class WriteSummary:
  """What `write_dataset` did."""

  written: list[int]
  skipped: list[int]
  seconds: float
  timings: dict[str, float]  # summed over identities (CPU-side seconds)
  images: int  # images written in this run (not heatmaps)
  # Seconds from the start at which each identity of this run finished.
  finished_at: list[float] = dataclasses.field(default_factory=list)


def _worker_init() -> None:
  """Keeps each worker to one core: llvmpipe and torch would otherwise each
  start a thread per core in every worker.
  """
  os.environ.setdefault("LP_NUM_THREADS", "1")
  try:
    import torch

    torch.set_num_threads(1)
  except ImportError:
    pass


def default_workers(config: SynthConfig) -> int:
  """All cores, or 1 when a diffusers backend shares one accelerator."""
  if config.texture == "diffusers" or config.background == "inpaint":
    return 1
  return len(os.sched_getaffinity(0))


def write_dataset(
  config: SynthConfig,
  out_dir: str,
  workers: int | None = None,
  progress: bool = True,
) -> WriteSummary:
  """Writes (or resumes) the dataset of `config` into `out_dir`.

  Args:
    config: the dataset configuration.
    out_dir: output folder (created if needed).
    workers: processes; None = default_workers(config). 1 runs in-process.
    progress: show a tqdm bar.

  Returns:
    A WriteSummary.

  Raises:
    OutputDirError: unusable folder, other configuration, or busy.
  """
  check_output_dir(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  lock = open(os.path.join(out_dir, ".lock"), "w")  # noqa: SIM115
  try:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise OutputDirError(
        f"another synth run is writing {out_dir!r}"
      ) from None
    _prepare(config, out_dir)
    summary = _run(config, out_dir, workers, progress)
    os.unlink(lock.name)  # still held: no other run can be between
    return summary
  finally:
    lock.close()


def _run(config, out_dir, workers, progress) -> WriteSummary:
  from tqdm import tqdm

  start = time.perf_counter()
  done = finished_identities(out_dir)
  todo = [i for i in range(config.num_identities) if i not in done]
  skipped = sorted(done & set(range(config.num_identities)))
  workers = default_workers(config) if workers is None else int(workers)
  workers = max(1, min(workers, len(todo) or 1))
  totals: dict[str, float] = {}
  finished_at: list[float] = []
  bar = tqdm(
    total=config.num_identities,
    initial=len(skipped),
    unit="identity",
    disable=not progress,
    desc="synth",
  )

  def collect(timings):
    for k, v in timings.items():
      totals[k] = totals.get(k, 0.0) + v
    finished_at.append(time.perf_counter() - start)
    bar.update(1)

  try:
    if workers == 1:
      for i in todo:
        collect(write_identity(config, out_dir, i))
    else:
      ctx = multiprocessing.get_context("spawn")
      with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_worker_init
      ) as pool:
        futures = [
          pool.submit(write_identity, config, out_dir, i) for i in todo
        ]
        try:
          for fut in concurrent.futures.as_completed(futures):
            collect(fut.result())
        except BaseException:
          for fut in futures:
            fut.cancel()
          raise
  finally:
    bar.close()
  return WriteSummary(
    todo,
    skipped,
    time.perf_counter() - start,
    totals,
    len(todo) * (1 + records.NUM_PAIN_EXPRESSIONS) * config.num_views,
    finished_at,
  )


# ------------------------------------------------------------------ reading


def _load(path: str) -> np.ndarray:
  with Image.open(path) as img:
    return np.asarray(img.convert("RGB"))


def read_identity(out_dir: str, index: int) -> list[records.ImageRecord]:
  """The records of a finished identity, as generate_identity made them
  (images decoded from disk: identical for PNG, close for JPEG).
  """
  folder = os.path.join(out_dir, "identities", identity_dirname(index))
  with open(os.path.join(folder, "labels.json"), encoding="utf-8") as f:
    labels = json.load(f)
  demo = labels["demographics"]
  demo = records.Demographics(
    **{**demo, "ethnicity_mix": tuple(demo["ethnicity_mix"])}
  )
  neutral = [
    _load(os.path.join(folder, n)) for n in labels["expressions"][0]["images"]
  ]
  out = []
  for expr in labels["expressions"]:
    e = expr["expression"]
    au = np.array([expr["au"][n] for n in records.AU_NAMES], np.float32)
    if expr["heatmap"]:
      with Image.open(os.path.join(folder, expr["heatmap"])) as img:
        heat = np.asarray(img.convert("L"))[..., None]
    else:
      heat = np.zeros(neutral[0].shape[:2] + (1,), np.uint8)
    for v, name in enumerate(expr["images"]):
      yaw, pitch = labels["views"][v]
      out.append(
        records.ImageRecord(
          key=records.identity_key(index, e, v),
          identity=index,
          expression=e,
          view=v,
          yaw_deg=float(yaw),
          pitch_deg=float(pitch),
          image=neutral[v] if e == 0 else _load(os.path.join(folder, name)),
          neutral_image=neutral[v],
          heatmap=heat,
          au=au,
          pspi=float(expr["pspi"]),
          demographics=demo,
          seed=labels["seed"],
        )
      )
  return out


def iter_records(out_dir: str) -> Iterator[records.ImageRecord]:
  """Every record of every finished identity, in identity order."""
  for index in sorted(finished_identities(out_dir)):
    yield from read_identity(out_dir, index)
