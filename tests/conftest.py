"""Test-session setup shared by every test.

- 8 simulated CPU devices, so sharding tests run on any machine. XLA reads
  the flag when jax initialises its backend, so it is set before any import.
- torchvision before TensorFlow: importing TensorFlow first and torchvision
  second segfaults the process (stack.md §11); importing torchvision here,
  first, makes the order safe for the whole session.
- absl flags marked parsed: grain reads absl flags and fails outside an absl
  app otherwise (stack.md §7).
- `gpu` marker: tests that need a GPU are skipped where jax has none.
- `compile_cache`: a module-scoped persistent XLA compilation cache, for
  tests that compile the same step functions several times (folds, runs).
"""

import contextlib
import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag)

try:  # optional extra; only the order matters
  import torchvision  # noqa: F401
except ImportError:
  pass

import absl.flags  # noqa: E402
import pytest  # noqa: E402

absl.flags.FLAGS.mark_as_parsed()


def _has_gpu() -> bool:
  try:
    import jax

    return any(d.platform == "gpu" for d in jax.devices())
  except RuntimeError:
    return False


def pytest_collection_modifyitems(config, items):
  if _has_gpu():
    return
  skip = pytest.mark.skip(reason="needs a GPU; this machine has none")
  for item in items:
    if "gpu" in item.keywords:
      item.add_marker(skip)


@contextlib.contextmanager
def persistent_compile_cache(path: str):
  """jax's persistent compilation cache in `path` (every program cached),
  then the previous settings."""
  import jax

  keys = ("jax_compilation_cache_dir",
          "jax_persistent_cache_min_compile_time_secs",
          "jax_persistent_cache_min_entry_size_bytes")
  old = {k: getattr(jax.config, k) for k in keys}
  jax.config.update(keys[0], path)
  jax.config.update(keys[1], 0.0)
  jax.config.update(keys[2], 0)
  try:
    yield
  finally:
    for k, v in old.items():
      jax.config.update(k, v)


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
  """Persistent compilation cache for one test module, then the old config."""
  with persistent_compile_cache(str(tmp_path_factory.mktemp("jax_cache"))):
    yield


# --- One fabricated UNBC table in both on-disk layouts ----------------------
# Shared by the reader, fold and builder tests (tests/tfds_3dpain) and the
# source, predict and runner tests (tests/jaxpain/eval); built once per
# session (10 subjects x 2 sequences x 8 frames of 32x32). Imports are lazy
# so the rendering tests' process never imports TFDS.


@pytest.fixture(scope="session")
def fab():
  from tfds_3dpain.unbc_mcmaster import fabricate

  return fabricate.make_unbc(n_subjects=10, n_sequences=2, n_frames=8,
                             size=32, seed=0)


@pytest.fixture(scope="session")
def archive_dir(fab, tmp_path_factory):
  from tfds_3dpain.unbc_mcmaster import unbc_archive

  root = tmp_path_factory.mktemp("unbc_archive") / "UNBC-McMaster"
  unbc_archive.write_archive(fab, str(root))
  return root


@pytest.fixture(scope="session")
def hdf5_dir(fab, tmp_path_factory):
  from tfds_3dpain.unbc_mcmaster import unbc

  root = tmp_path_factory.mktemp("unbc_hdf5")
  unbc.write_hdf5(fab, str(root))
  return root
