#!/usr/bin/env bash
# Sets up .venv (if needed) and runs the whole test suite.
#
# Two pytest processes: tests/synth renders with pyrender in-process, and
# pyrender and TensorFlow cannot share a process (either order segfaults;
# see docs/synth.md), while the TFDS tests import TensorFlow. Keeping the
# rendering tests in their own run makes the suite immune to test order.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PYOPENGL_PLATFORM=egl HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
# --durations=15: the slowest tests of each run, in CI's output.
PYTEST=(.venv/bin/python -m pytest -n 2 --dist loadfile --durations=15)
if [ "$#" -gt 0 ]; then
  exec "${PYTEST[@]}" "$@"
fi
echo "== tests/synth (rendering; no TensorFlow in these processes)"
"${PYTEST[@]}" tests/synth
echo "== everything else"
"${PYTEST[@]}" --ignore=tests/synth
