"""Host input pipeline throughput: pairs per CPU-second, per layout and stage.

What the trainer's host does for every step is read records and decode the
pain image and its neutral reference into a uint8 batch (augmentation runs
on the device). This benchmark builds the same faces in several storage
layouts (`tfds_3dpain` `ImageStorage`: stored side x JPEG / raw / raw with
zstd shards) and measures, per layout:

- `jaxpain.data.pipeline.train_dataset` as the trainer runs it, neutral
  same-view, random-view, and random-view with the neutral cache off, in
  the main process and with grain worker processes: pairs per CPU-second
  of all processes (the per-core rate; the machine is shared, so wall time
  says little) and pairs/s;
- the TFDS reader it replaces (`tfds.data_source`, every feature decoded)
  on the same records: the "before";
- tf.data over the TFRecord twin with the same decode (pain + same-view
  neutral), in a child process (TensorFlow stays out of this one);
- a per-stage profile (read, parse, decode, neutral, batch) and, for the
  stored-256 JPEGs, the decode choices (Pillow, simplejpeg full size,
  DCT-domain 1/2^k, libjpeg's 7/8), each at the model sizes.

Figures that a run cannot give (a clock that did not advance) are None,
never a guess.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time

import numpy as np

GOAL_PER_CORE = 1500.0
RENDER = 256  # rendered (or fixture) side; the stored sizes derive from it
LAYOUTS = ("jpeg", "raw", "rawzstd")
MODES = (("same_view", 512), ("random_view", 512), ("random_view", 0))
FEATURES = ("au", "pspi", "identity", "image", "neutral_image")


# ------------------------------------------------------------- clocks ----


def cpu_seconds() -> float:
  """CPU seconds of this process (all threads) and its live children.

  Children (grain workers) are read from /proc schedstat, in nanoseconds,
  so short windows are not rounded to a clock tick.
  """
  usage = resource.getrusage(resource.RUSAGE_SELF)
  total = usage.ru_utime + usage.ru_stime
  for pid in _children(os.getpid()):
    try:
      for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
          total += int(f.read().split()[0]) / 1e9
    except OSError:  # exited meanwhile
      continue
  return total


def _children(pid: int) -> list[int]:
  out = []
  try:
    for tid in os.listdir(f"/proc/{pid}/task"):
      with open(f"/proc/{pid}/task/{tid}/children") as f:
        out += [int(p) for p in f.read().split()]
  except OSError:
    pass
  return out + [g for c in out for g in _children(c)]


def rate(count: float, seconds: float) -> float | None:
  """count / seconds, or None when the clock did not advance."""
  return round(count / seconds, 1) if seconds > 0 else None


# --------------------------------------------------------------- data ----


def storage_for(size: int, layout: str, render: int = RENDER):
  """The ImageStorage of a (stored size, layout) cell; JPEG at the rendered
  size is the default storage (that of `full` and `small`)."""
  from tfds_3dpain import features

  return features.ImageStorage(
      size=None if size == render and layout == "jpeg" else size,
      layout="jpeg" if layout == "jpeg" else "raw",
      compress=True if layout == "rawzstd" else None)


def bench_config(source: str, size: int, layout: str, identities: int,
                 render: int = RENDER):
  """The `3dpain` config of one benchmark layout.

  Args:
    source: 'synth' (faces rendered by synth/, realistic JPEG entropy) or
      'fixture' (the fake release of random pixels, imported by the
      `official` config; fast, for smoke runs).
    size, layout: the stored side and LAYOUTS entry.
    identities: identities rendered (synth) or train identities (fixture).
    render: rendered / fixture side.
  """
  import tfds_3dpain

  storage = storage_for(size, layout, render)
  name = f"bench_{source}{identities}_{render}to{size}_{layout}"
  if source == "synth":
    return tfds_3dpain.make_config(name, num_identities=identities,
                                   resolution=render, storage=storage,
                                   num_workers=1)
  return tfds_3dpain.ThreeDPainConfig(name=name, official=True,
                                      num_workers=0, storage=storage)


def prepare(data_dir: str, source: str, size: int, layout: str,
            identities: int, render: int = RENDER) -> str:
  """Builds (once, cached in data_dir) one layout; its TFDS name.

  Arguments as `bench_config`; data_dir is the TFDS data_dir.
  """
  import tensorflow_datasets as tfds

  from tfds_3dpain import testing

  cfg = bench_config(source, size, layout, identities, render)
  dl = None
  if source != "synth":
    manual = os.path.join(data_dir, f"release_{render}px_{identities}ids")
    if not os.path.isdir(manual):
      testing.write_official_fixture(
          manual + ".tmp", csv_splits=(0,) * identities + (1, 2),
          size=render, heatmaps=False)
      os.replace(manual + ".tmp", manual)
    dl = tfds.download.DownloadConfig(manual_dir=manual)
  builder = tfds.builder("3dpain", config=cfg, data_dir=data_dir)
  if not builder.is_prepared():
    builder.download_and_prepare(download_config=dl)
  return f"3dpain/{cfg.name}"


def disk_mib(src) -> float | None:
  """MiB of the split's shard files (TfdsRecords sources)."""
  shards = getattr(src, "_shards", None)
  if not shards:
    return None
  return round(sum(os.path.getsize(s.path) for s in shards) / 2**20, 2)


# ------------------------------------------------------------ measure ----


def _sharding():
  import jax

  from jaxpain import sharding as shd
  mesh = shd.create_mesh((1, 1, 1), ("data", "fsdp", "tensor"),
                         devices=jax.devices()[:1])
  return shd.batch_sharding(mesh, ("data", "fsdp"))


def measure(src, index, mode: str, cache_mb: int, workers: int, batch: int,
            batches: int, warmup: int, image_size: int | None) -> dict:
  """pairs/s and pairs per CPU-second of train_dataset in steady state."""
  from jaxpain.data import pipeline

  spec = pipeline.InputSpec(fields=("image", "neutral"), neutral_mode=mode,
                            image_size=image_size, neutral_cache_mb=cache_mb)
  ds = pipeline.train_dataset(src, index, spec, batch, _sharding(), workers,
                              buffer=2)
  it = iter(ds)
  for _ in range(warmup):
    next(it)
  cpu0, t0 = cpu_seconds(), time.perf_counter()
  for _ in range(batches):
    b = next(it)
  wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
  shape = [int(x) for x in b["image"].shape[1:]]
  del it, ds
  pairs = batches * batch
  return {"neutral_mode": mode, "neutral_cache_mb": cache_mb,
          "workers": workers, "batch": batch, "pairs": pairs,
          "image_shape": shape, "wall_s": round(wall, 3),
          "cpu_s": round(cpu, 3), "pairs_per_s": rate(pairs, wall),
          "pairs_per_cpu_s": rate(pairs, cpu)}


def _per_item_us(fn, items, repeat: int = 1) -> float | None:
  t0 = time.thread_time()
  for _ in range(repeat):
    for x in items:
      fn(x)
  dt = time.thread_time() - t0
  return round(1e6 * dt / (len(items) * repeat), 1) if dt > 0 else None


def stage_profile(src, index, image_size: int | None, n: int = 128) -> dict:
  """Per-pair CPU microseconds of each host stage, measured in isolation.

  read: the record's bytes; parse: its protobuf and the features a pair
  uses; decode: the pain image (at the DCT scale the pipeline picks);
  neutral: a cached neutral copied into its batch row. `resize` on the host
  is 0 by design: the device resizes (docs/benchmarks.md §3).
  """
  from jaxpain.data import records

  ids = [int(i) for i in index.example_records()[:n]]
  values = [src.fields(i, ("image",))["image"] for i in ids]
  img = records.decode(values[0], 3, target=image_size)
  row = np.empty_like(img)
  read = _per_item_us(src.read, ids)
  parse = _per_item_us(lambda i: src.fields(i, FEATURES), ids)
  out = {"read": read,
         "parse": None if parse is None or read is None else round(
             max(parse - read, 0.0), 1),
         "decode": _per_item_us(
             lambda v: records.decode(v, 3, target=image_size), values),
         "resize": 0.0,
         "neutral": _per_item_us(lambda _: np.copyto(row, img), ids)}
  return out


def decode_choices(src, index, n: int = 64) -> list[dict]:
  """Decode options for stored-256 JPEGs at the model sizes (us/image)."""
  import io

  import simplejpeg
  from PIL import Image

  from jaxpain.data import records

  ids = [int(i) for i in index.example_records()[:n]]
  jpegs = [src.fields(i, ("image",))["image"].data for i in ids]

  def pillow(data, size):
    with Image.open(io.BytesIO(data)) as im:
      im = im.convert("RGB")
      return np.asarray(im.resize((size, size), Image.Resampling.BILINEAR))

  rows = []
  for size in (64, 128, 224):
    k = records.jpeg_scale(RENDER, size)
    rows.append({
        "target": size,
        "pillow_decode_resize": _per_item_us(
            lambda d, s=size: pillow(d, s), jpegs),
        "simplejpeg_full": _per_item_us(simplejpeg.decode_jpeg, jpegs),
        "dct_power_of_two": _per_item_us(
            lambda d, s=RENDER // k: simplejpeg.decode_jpeg(
                d, min_height=s, min_width=s), jpegs),
        "dct_scale": f"1/{k}",
        "dct_nearest_eighth": _per_item_us(
            lambda d, s=size: simplejpeg.decode_jpeg(
                d, min_height=s, min_width=s), jpegs)})
  return rows


def _tfdata_child(cfg, data_dir, batch, batches, warmup, queue):
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf
  import tensorflow_datasets as tfds

  import tfds_3dpain  # noqa: F401  (registers 3dpain)

  jpeg = cfg.storage.layout == "jpeg"
  skip = ({"image": tfds.decode.SkipDecoding(),
           "neutral_image": tfds.decode.SkipDecoding(),
           "heatmap": tfds.decode.SkipDecoding()} if jpeg else None)
  builder = tfds.builder("3dpain", config=cfg, data_dir=data_dir)
  ds = builder.as_dataset(split="train", decoders=skip)

  def pair(ex):
    dec = (lambda x: tf.io.decode_jpeg(x, channels=3)) if jpeg else (
        lambda x: x)
    return {"image": dec(ex["image"]), "neutral": dec(ex["neutral_image"]),
            "pspi": ex["pspi"]}

  ds = (ds.filter(lambda ex: ex["expression"] > 0).repeat()
        .map(pair, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch, drop_remainder=True).prefetch(2))
  it = iter(tfds.as_numpy(ds))
  for _ in range(warmup):
    next(it)
  t0, u0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
  for _ in range(batches):
    next(it)
  u1 = resource.getrusage(resource.RUSAGE_SELF)
  wall = time.perf_counter() - t0
  cpu = (u1.ru_utime + u1.ru_stime) - (u0.ru_utime + u0.ru_stime)
  pairs = batch * batches
  queue.put({"pairs": pairs, "pairs_per_s": rate(pairs, wall),
             "pairs_per_cpu_s": rate(pairs, cpu), "tf": tf.__version__})


def tfdata_rate(cfg, data_dir, batch, batches, warmup) -> dict:
  """tf.data over the TFRecord twin, same decode, in a spawned child.

  Returns the child's figures, or {'error': ...} if it died.
  """
  import queue as queue_lib

  ctx = multiprocessing.get_context("spawn")
  results = ctx.Queue()
  proc = ctx.Process(target=_tfdata_child, args=(
      cfg, data_dir, batch, batches, warmup, results))
  proc.start()
  try:
    while True:
      try:
        return results.get(timeout=2)
      except queue_lib.Empty:
        if not proc.is_alive():
          return {"error": f"tf.data child exited with {proc.exitcode}"}
  finally:
    proc.join(timeout=30)
