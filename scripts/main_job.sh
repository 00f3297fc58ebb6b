#!/usr/bin/env bash
# Sets up .venv (if needed) and runs the main job on the embedded default head:
# synthesize a small 3DPain, build it as TFDS, train teacher and student,
# evaluate on held-out identities, write a report. Extra args go to the job,
# e.g. `bash scripts/main_job.sh --workdir runs/other`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PYOPENGL_PLATFORM=egl HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m jaxpain.main_job "$@"
