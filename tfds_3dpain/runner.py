"""Runs per-identity work units locally (process pool) or as a Beam transform.

Both sources of `3dpain` (the generator and the official import) produce
examples one identity at a time: `fn(unit) -> (examples, notes)`, where the
examples are `(key, example dict)` pairs that already hold encoded image
bytes, and the notes are `(file name, reason)` of inputs that were skipped. Identities are independent and
deterministic, so they can be computed anywhere, in any order:

- locally, `UnitRunner` feeds them to a pool of `spawn`ed processes (one per
  core by default) and yields results in unit order. `spawn`, not `fork`:
  the parent may hold TensorFlow or JAX threads and the workers open EGL
  contexts for pyrender, none of which survives a fork reliably. A spawned
  child normally re-runs the parent's `__main__` script, which breaks every
  script that calls `download_and_prepare()` without an
  `if __name__ == "__main__":` guard; the workers need nothing from
  `__main__` (their function lives here), so the pool is started with
  `__main__` hidden (`main_hidden`).
- with Beam, `beam_transform` returns the PTransform TFDS expects from
  `_generate_examples`; TFDS then runs it on the user's runner (Dataflow,
  Spark, Flink, or the DirectRunner).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Example = tuple[str, dict]
Note = tuple[str, str]
UnitFn = Callable[[Any], tuple[list[Example], list[Note]]]


def local_cores() -> int:
  """Cores this process may use (respects affinity masks and containers)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not on Linux.
    return os.cpu_count() or 1


@contextlib.contextmanager
def main_hidden():
  """Shows spawned children an empty `__main__` (see module docstring)."""
  main = sys.modules.get("__main__")
  sys.modules["__main__"] = types.ModuleType("__main__")
  try:
    yield
  finally:
    sys.modules["__main__"] = main


class UnitRunner:
  """A lazily started process pool shared by all splits of one build.

  Use as a context manager around the whole build so that the workers (and
  what they load once: head model, GL context) serve every split.
  """

  def __init__(self, num_workers: int | None = None, *,
               in_process: bool = True, initializer=None):
    """Creates the runner; no process starts before the first `examples`.

    Args:
      num_workers: pool size; None uses every local core.
      in_process: whether a single worker or a single unit may run in this
        process (cheaper) instead of a pool of at least one process.
      initializer: called once in every pool process.
    """
    self._num_workers = local_cores() if num_workers is None else num_workers
    self._in_process = in_process
    self._initializer = initializer
    self._pool = None

  def __enter__(self) -> UnitRunner:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    if self._pool is not None:
      self._pool.terminate()
      self._pool.join()
      self._pool = None

  def cap(self, max_units: int) -> None:
    """Never start more workers than the largest split has units."""
    self._num_workers = max(1, min(self._num_workers, max_units))

  def _get_pool(self):
    if self._pool is None:
      ctx = multiprocessing.get_context("spawn")
      with main_hidden():  # Workers start inside Pool() (no respawns later).
        self._pool = ctx.Pool(
            max(1, self._num_workers), initializer=self._initializer
        )
    return self._pool

  def examples(
      self, fn: UnitFn, units: Iterable[Any], notes: list[Note]
  ) -> Iterator[Example]:
    """Yields fn(unit)'s examples for every unit, in unit order.

    Args:
      fn: the work function (module level, picklable).
      units: its arguments, one per identity.
      notes: receives the notes of every unit.
    """
    units = list(units)
    if self._in_process and (self._num_workers <= 1 or len(units) <= 1):
      results = map(fn, units)
    else:
      results = self._get_pool().imap(fn, units, chunksize=1)
    for examples, unit_notes in results:
      notes.extend(unit_notes)
      yield from examples


def _examples_logging_notes(unit: Any, fn: UnitFn) -> list[Example]:
  """Beam worker body: a worker cannot hand notes back, so it logs them."""
  examples, notes = fn(unit)
  for name, reason in notes:
    logging.warning("3dpain: skipped %s: %s", name, reason)
  return examples


def beam_transform(fn: UnitFn, units: Iterable[Any]):
  """The Beam PTransform computing fn over units (TFDS applies it).

  `Reshuffle` after `Create` lets the runner spread the (few, expensive)
  units over workers instead of keeping them fused on one.
  """
  import apache_beam as beam  # Optional dependency: jaxpain[beam].

  return (
      beam.Create(list(units))
      | "Reshuffle" >> beam.Reshuffle()
      | "Examples" >> beam.FlatMap(_examples_logging_notes, fn)
  )
