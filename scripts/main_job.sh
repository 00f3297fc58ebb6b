#!/usr/bin/env bash
# Sets up .venv (if needed) and runs the main job on the embedded default head:
# synthesize 3DPain (600 identities, 32 px) and build it as TFDS, train the
# heatmap teacher and, over 3 seeds, the distilled RGB student and two
# ablations, evaluate on held-out identities, write runs/main/report/report.md.
# Extra args go to the job, e.g. `bash scripts/main_job.sh --workdir runs/other`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PYOPENGL_PLATFORM=egl HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m jaxpain.main_job "$@"
