#!/usr/bin/env bash
# The GPU check of issue 16, as one prepared script for a lent GPU machine
# (one H100 or H200; Python 3.12, jax 0.11.2, torch 2.11, timm; no
# registry). It installs the project's missing packages from wheels carried
# in .whl/, runs the tests marked `gpu`, then scripts/bench_train.py
# --device gpu for ViTPain-S/16, B/16 and L/16 (bf16 compute, cuDNN
# attention, against the released PyTorch recipe: fp16 autocast +
# GradScaler) and writes the table for docs/benchmarks.md.
#
# STATUS: written and read, NOT yet run: no GPU was lent to the task that
# wrote it. Expect to fix small things on its first run.
#
#   bash scripts/gpu_check.sh --fetch   # here (PyPI reachable): .whl/
#   bash scripts/gpu_check.sh           # there, from the repository root
#   DRY_RUN=1 bash scripts/gpu_check.sh # here: the plumbing on the CPU,
#                                       # a tiny model (no GPU figures)
#
# With the device tool: carry [".whl"], timeout_s 600; the results land in
# $OUT (the tool brings them back): gpu_table.md, bench_*.json, logs.
# Budget: about 8 minutes with the install; each benchmark has its own
# time limit so that one stuck run leaves time for the others.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"

# Packages the GPU image lacks (grain, array_record, portpicker,
# ml_collections) or may hold in older versions than the ones tested here
# (flax, optax, timm, peft); installed only where the image's own is
# missing or older.
WHEELS=(ml_collections==1.1.0 grain==0.2.18 array_record==0.8.6
        portpicker==1.6.0 flax==0.12.8 optax==0.2.8 timm==1.0.31
        peft==0.21.2)

if [ "${1:-}" = "--fetch" ]; then
  mkdir -p .whl
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl "${WHEELS[@]}" || exit 1
  du -sh .whl
  exit 0
fi

log() { echo "== $(date +%T) $*" | tee -a "$OUT/gpu_check.log"; }
START=$(date +%s)

log "machine"
nvidia-smi -q > "$OUT/nvidia_smi.txt" 2>&1 || true
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm,memory.total \
  --format=csv | tee -a "$OUT/gpu_check.log"

log "install carried wheels (only where missing or older)"
if ! ls .whl/*.whl > /dev/null 2>&1; then
  echo "no wheels in .whl/: run 'bash scripts/gpu_check.sh --fetch' where" \
    "PyPI is reachable, then carry .whl" | tee -a "$OUT/gpu_check.log"
  exit 2
fi
NEED=$("$PY" - .whl/*.whl <<'EOF'
import sys
from importlib import metadata
from packaging.version import Version
for path in sys.argv[1:]:
  name, version = path.split('/')[-1].split('-')[:2]
  try:
    have = Version(metadata.version(name.replace('_', '-')))
  except metadata.PackageNotFoundError:
    have = None
  if have is None or have < Version(version):
    print(path)
EOF
)
if [ -n "$NEED" ]; then
  # shellcheck disable=SC2086
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site $NEED || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export TF_CPP_MIN_LOG_LEVEL=2 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
"$PY" - <<'EOF' 2>&1 | tee -a "$OUT/gpu_check.log"
from importlib import metadata
import jax
print('devices', jax.devices())
for n in ('jax', 'jaxlib', 'flax', 'optax', 'grain', 'torch', 'timm', 'peft',
          'ml_collections'):
  try:
    print(n, metadata.version(n))
  except metadata.PackageNotFoundError:
    print(n, 'MISSING')
EOF

log "tests marked gpu"
timeout 120 "$PY" -m pytest -q -n 0 -p no:cacheprovider -m gpu -rs \
  tests/jaxpain 2>&1 | tee "$OUT/pytest_gpu.log" | tail -15

# The released batch is 48; larger batches show what the GPU can do.
# variant, batch, time limit (s): typical runs should take about a minute
# and a half each (estimate: compile, 2 x 50 timed steps per side).
RUNS=("S/16 256 130" "B/16 128 140" "L/16 64 170")
DEVICE=gpu
EXTRA=(--steps 50 --warmup 5)
if [ "${DRY_RUN:-0}" = 1 ]; then
  RUNS=("mu/16 2 300")
  DEVICE=cpu
  EXTRA=(--image-size 32 --steps 2 --warmup 1 --allow-few-steps
         --fast-compile --peak-gemm 256)
fi
JSONS=()
for run in "${RUNS[@]}"; do
  set -- $run
  name=$(echo "$1" | tr -d /)
  log "bench_train $1 batch $2"
  timeout "$3" "$PY" scripts/bench_train.py --device "$DEVICE" \
    --variant "$1" --batch "$2" --phases train,eval "${EXTRA[@]}" \
    --out "$OUT/bench_${name}.json" > "$OUT/bench_${name}.log" 2>&1
  echo "exit $? after $(( $(date +%s) - START )) s" | tee -a "$OUT/gpu_check.log"
  tail -4 "$OUT/bench_${name}.log"
  [ -f "$OUT/bench_${name}.json" ] && JSONS+=("$OUT/bench_${name}.json")
done

log "table for docs/benchmarks.md"
if [ "${#JSONS[@]}" -gt 0 ]; then
  "$PY" -c "import sys; from jaxpain.bench import report; \
print(report.summarize_files(sys.argv[1:]))" "${JSONS[@]}" \
    | tee "$OUT/gpu_table.md"
fi
log "done in $(( $(date +%s) - START )) s"
