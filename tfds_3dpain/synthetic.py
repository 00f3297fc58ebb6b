"""One identity of the generated configs: synth/ records -> encoded examples.

`identity_examples` is the work unit the builder hands to the process pool or
to Beam (runner.py). It is a module-level function of picklable arguments so
spawned processes and Beam workers can import it.

pyrender (EGL) and TensorFlow cannot share a process here: rendering after
`import tensorflow` segfaults in the first texture upload, and importing
TensorFlow after a render segfaults in TensorFlow's start-up (both tested).
TFDS's test case, `tfds.load` users, the TFRecord twin and in-process Beam
runners all load TensorFlow, so rendering only ever happens in processes
that exist for it: the builder's pool workers, marked by `mark_render_process`
as their initializer, or else a helper process started with `spawn` (which
inherits no modules) that `identity_examples` hands the identity to. Only
encoded bytes come back.
"""

from __future__ import annotations

import atexit
import multiprocessing
import sys

from synth import config as synth_config
from synth import records
from tfds_3dpain import features, runner

NUM_EXPRESSIONS = 1 + records.NUM_PAIN_EXPRESSIONS
_render_process = False
_helper_pool = None


def identity_examples(
    spec: synth_config.SynthConfig, index: int,
    storage: features.ImageStorage = features.DEFAULT_STORAGE,
) -> tuple[list[tuple[str, dict]], list]:
  """Generates identity `index` and encodes its images, safely.

  Args:
    spec: the generator settings of the config.
    index: identity index in [0, spec.num_identities).
    storage: how the images are stored (size, JPEG or raw).

  Returns:
    (key, example) pairs, one per image (11 expressions x views), and an
    empty list of notes (generation skips nothing).

  Raises:
    RuntimeError: the generator broke its contract (wrong count, identity or
      missing neutral view), which would otherwise mislabel examples.
  """
  return run_rendering(_identity_examples_here, spec, index, storage)


def run_rendering(fn, *args):
  """fn(*args) where rendering is safe: here in a rendering process, else
  in the spawned helper process (fn must be a picklable module function).
  """
  if _render_process:
    if "tensorflow" in sys.modules:
      raise RuntimeError(
          "3dpain: TensorFlow was imported in a rendering process, which "
          "crashes pyrender; keep TensorFlow out of synth workers"
      )
    return fn(*args)
  return _helper().apply(fn, args)


def mark_render_process() -> None:
  """Pool initializer: this process renders and never imports TensorFlow."""
  global _render_process
  _render_process = True


def _helper():
  """A one-process spawn pool that renders for this process, kept alive."""
  global _helper_pool
  if _helper_pool is None:
    with runner.main_hidden():
      _helper_pool = multiprocessing.get_context("spawn").Pool(
          1, initializer=mark_render_process
      )
    atexit.register(_helper_pool.terminate)
  return _helper_pool


def _identity_examples_here(spec, index, storage):
  from synth import pipeline  # Rendering stack: loaded where it renders.

  recs = pipeline.generate_identity(spec, index)
  _check_contract(spec, index, recs)
  quality = spec.jpeg_quality
  neutral = {
      r.view: storage.rgb(r.image, quality) for r in recs if r.is_neutral
  }
  examples = [
      features.synthetic_example(r, quality, neutral[r.view], storage)
      for r in recs
  ]
  return examples, []


def _check_contract(spec, index: int, recs: list[records.ImageRecord]) -> None:
  expected = {
      (e, v) for e in range(NUM_EXPRESSIONS) for v in range(spec.num_views)
  }
  got = [(r.expression, r.view) for r in recs]
  problems = []
  if sorted(got) != sorted(expected):
    problems.append(
        f"expected one record per (expression, view) in "
        f"{NUM_EXPRESSIONS}x{spec.num_views}, got {len(recs)} records"
    )
  wrong_id = sorted({r.identity for r in recs} - {index})
  if wrong_id:
    problems.append(f"records of identities {wrong_id}")
  if problems:
    raise RuntimeError(
        f"synth.pipeline.generate_identity(config, {index}) broke its "
        f"contract: {'; '.join(problems)}"
    )
