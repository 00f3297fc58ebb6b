#!/usr/bin/env bash
# The temporal end-to-end job (issue 18): for each seed, simulate pain
# sequences, train the diffusion-forcing model and the full-sequence
# baseline (configs/temporal*.py:small), evaluate them and the retrieval /
# random / mean-face baselines on held-out simulated subjects; then sample
# a BioVid programme to CSV, render frames, and write report.md with
# mean ± sd over seeds. Resumes where it stopped. Extra args go to the job,
# e.g. `bash scripts/temporal_job.sh --seeds 0` (one seed, a third of the
# time) or `--out runs/other`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PYOPENGL_PLATFORM=egl HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m jaxpain.temporal job "$@"
