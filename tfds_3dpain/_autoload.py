"""Import hook: registers `3dpain` whenever TensorFlow Datasets is imported.

TFDS has no plugin discovery: a builder exists only once its module has been
imported. So that other projects can call `tfds.load('3dpain')` or
`tfds.data_source('3dpain')` without importing anything of ours, installing
the project puts `tfds_3dpain_autoload.pth` into site-packages. Its single
line imports this module at interpreter start-up (in every process, which is
why this module uses the standard library only and does almost nothing):
it puts a finder on `sys.meta_path` that waits for `tensorflow_datasets`,
lets the normal machinery load it, and then imports `tfds_3dpain`, which
patches TFDS's name parsing and registers the builder.

The build backend copies this file to site-packages as the top-level module
`tfds_3dpain_autoload` (pyproject.toml, `[tool.hatch.build.targets.wheel.
force-include]`), so the hook never imports our package before TFDS is
wanted. Set `TFDS_3DPAIN_NO_AUTOLOAD=1` to switch it off; `python -S` and
isolated mode skip `.pth` files altogether.
"""

from __future__ import annotations

import importlib
import importlib.abc
import os
import sys
import warnings

TRIGGER = "tensorflow_datasets"
TARGET = "tfds_3dpain"
DISABLE_ENV = "TFDS_3DPAIN_NO_AUTOLOAD"


def _import_target() -> None:
  """Imports tfds_3dpain; a broken install warns instead of breaking TFDS."""
  try:
    importlib.import_module(TARGET)
  except Exception as e:  # noqa: BLE001 - TFDS itself must stay importable
    warnings.warn(
        f"{TARGET} could not be imported after {TRIGGER} ({e!r}); "
        f"tfds.load('3dpain') will not find the builder. Reinstall the "
        f"project, or set {DISABLE_ENV}=1 to silence this.",
        RuntimeWarning,
        stacklevel=2,
    )


class _ChainedLoader(importlib.abc.Loader):
  """Runs the real loader, then imports our package.

  Every other attribute (resource readers, `is_package`, `get_code`, ...) is
  forwarded, so TFDS's use of `importlib.resources` on itself is unaffected.
  """

  def __init__(self, loader):
    self._loader = loader

  def __getattr__(self, name):
    return getattr(self._loader, name)

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    self._loader.exec_module(module)
    _import_target()


class TfdsFinder(importlib.abc.MetaPathFinder):
  """Meta-path finder that fires once, on the import of TRIGGER."""

  # Marks our finders whichever copy of this module made them (the installed
  # `tfds_3dpain_autoload` or the in-package `tfds_3dpain._autoload`).
  is_tfds_3dpain_hook = True

  def find_spec(self, fullname, path=None, target=None):
    if fullname != TRIGGER:
      return None
    uninstall()  # One shot; also keeps the lookup below from recursing.
    for finder in sys.meta_path:
      find = getattr(finder, "find_spec", None)
      spec = find(fullname, path, target) if find else None
      if spec is not None:
        break
    else:
      return None
    if spec.loader is None or not hasattr(spec.loader, "exec_module"):
      return spec
    spec.loader = _ChainedLoader(spec.loader)
    return spec


def _is_hook(finder) -> bool:
  return getattr(finder, "is_tfds_3dpain_hook", False) is True


def installed() -> bool:
  """Whether a 3dpain finder is armed on sys.meta_path."""
  return any(_is_hook(f) for f in sys.meta_path)


def uninstall() -> None:
  """Removes every 3dpain finder from sys.meta_path."""
  sys.meta_path[:] = [f for f in sys.meta_path if not _is_hook(f)]


def install() -> None:
  """Arms the hook, or imports our package now if TFDS is already loaded."""
  if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
    return
  if TRIGGER in sys.modules:
    _import_target()
  elif not installed():
    sys.meta_path.insert(0, TfdsFinder())


if __name__ == "tfds_3dpain_autoload":  # Imported by the .pth file.
  install()
