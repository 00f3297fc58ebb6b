#!/usr/bin/env bash
# Sets up .venv (if needed) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PYOPENGL_PLATFORM=egl HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
