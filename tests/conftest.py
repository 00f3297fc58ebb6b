"""Test-session setup shared by every test.

- 8 simulated CPU devices, so sharding tests run on any machine. XLA reads
  the flag when jax initialises its backend, so it is set before any import.
- torchvision before TensorFlow: importing TensorFlow first and torchvision
  second segfaults the process (stack.md §11); importing torchvision here,
  first, makes the order safe for the whole session.
- absl flags marked parsed: grain reads absl flags and fails outside an absl
  app otherwise (stack.md §7).
- `gpu` marker: tests that need a GPU are skipped where jax has none.
- One persistent XLA compilation cache for the whole test session: a fresh
  folder, created by the first process that loads this file (the xdist
  controller) and passed on through the environment to the xdist workers
  and to every subprocess a test starts (CLI runs, SIGKILL/resume, two
  processes). A step compiled once is loaded, not compiled again, by every
  later test, fold or process that builds the same program. JAX reads the
  three variables when it is imported; they are set before any import.
- XLA's CPU backend at optimisation level 0 (`TEST_XLA_FLAGS`): the tests'
  models are tiny, so compiling dominates their run time, and level 0
  compiles about a third faster. The numbers a test checks do not depend on
  it (same programs, same float32 arithmetic; the step-equality tests
  compare runs made under the same flags).
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
TEST_XLA_FLAGS = ("--xla_force_host_platform_device_count=8",
                  "--xla_backend_optimization_level=0")
for _flag in TEST_XLA_FLAGS:
  if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag)

if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
  _cache = tempfile.mkdtemp(prefix="jaxpain_test_xla_cache_")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

try:  # optional extra; only the order matters
  import torchvision  # noqa: F401
except ImportError:
  pass

import absl.flags  # noqa: E402
import numpy as np  # noqa: E402
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


@pytest.fixture(scope="session")
def compile_cache():
  """The session's persistent compilation cache folder (set up above).

  Kept as a fixture so tests that rely on the cache say so; every test
  uses the cache whether it asks or not.
  """
  import jax

  assert jax.config.jax_compilation_cache_dir, "set up at the top of the file"
  return jax.config.jax_compilation_cache_dir


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


# --- `3dpain/official` builds with a damaged train shard --------------------
# Shared by the bad-input tests of the train and eval commands and of `tfds
# build`: reading them must name the damage and delete nothing. One build
# from a fake release, copied and damaged two ways.


@pytest.fixture(scope="session")
def _official_build(tmp_path_factory):
  """The data_dir of a pristine `3dpain/official` built from a fake release."""
  import tensorflow_datasets as tfds

  from tfds_3dpain import testing

  root = tmp_path_factory.mktemp("official_build")
  release = testing.write_official_fixture(root / "release")
  builder = tfds.builder("3dpain/official", data_dir=str(root / "data"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(release.root)))
  return root / "data"


def _damaged_copy(pristine, dst, damage):
  """(data_dir, version folder, {file name: bytes}) of a damaged copy."""
  shutil.copytree(pristine, dst)
  version = dst / "3dpain" / "official" / "1.0.0"
  damage(version / "3dpain-train.array_record-00000-of-00001")
  files = {p.name: p.read_bytes() for p in version.iterdir()}
  return str(dst), version, files


@pytest.fixture(scope="session")
def damaged_3dpain(_official_build, tmp_path_factory):
  """A copy whose train shard was cut short (what a broken copy leaves)."""
  def cut(shard):
    shard.write_bytes(shard.read_bytes()[:1000])

  return _damaged_copy(_official_build,
                       tmp_path_factory.mktemp("truncated") / "data", cut)


@pytest.fixture(scope="session")
def rotten_3dpain(_official_build, tmp_path_factory):
  """A copy with 4 KiB of random bytes inside its train shard (same size)."""
  def rot(shard):
    data = bytearray(shard.read_bytes())
    start = len(data) // 4
    data[start:start + 4096] = np.random.default_rng(0).bytes(4096)
    shard.write_bytes(bytes(data))

  return _damaged_copy(_official_build,
                       tmp_path_factory.mktemp("rotten") / "data", rot)
