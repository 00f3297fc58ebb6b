"""Test-session setup shared by every test.

- 8 simulated CPU devices, so sharding tests run on any machine. XLA reads
  the flag when jax initialises its backend, so it is set before any import.
- torchvision before TensorFlow: importing TensorFlow first and torchvision
  second segfaults the process (stack.md §11); importing torchvision here,
  first, makes the order safe for the whole session.
- absl flags marked parsed: grain reads absl flags and fails outside an absl
  app otherwise (stack.md §7).
- `gpu` marker: tests that need a GPU are skipped where jax has none.
"""

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
