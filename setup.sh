#!/usr/bin/env bash
# Install vqathinker and its pinned dependencies. Idempotent: run it again at any time.
#
#   bash setup.sh            # CPU (or CUDA) torch, decord, dev tools, demo weights, the package (editable)
#   GPU=1 bash setup.sh      # also the GPU extras (flash-attn, vllm) and the remote-code extra (timm,
#                            # torchvision); needs CUDA_HOME
#
# Uses the active virtualenv or conda env when there is one, else creates ./.venv (override with VENV_DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [[ -n "${VIRTUAL_ENV:-}" ]]; then
    echo "setup.sh: using the active virtualenv $VIRTUAL_ENV"
    PY="$VIRTUAL_ENV/bin/python"
elif [[ -n "${CONDA_PREFIX:-}" && "${CONDA_DEFAULT_ENV:-base}" != "base" ]]; then
    echo "setup.sh: using the active conda env $CONDA_PREFIX"
    PY="$CONDA_PREFIX/bin/python"
else
    VENV_DIR=${VENV_DIR:-.venv}
    if [[ ! -x "$VENV_DIR/bin/python" ]]; then
        echo "setup.sh: creating $VENV_DIR with $("$PYTHON" --version)"
        "$PYTHON" -m venv "$VENV_DIR"
    fi
    PY="$VENV_DIR/bin/python"
fi

if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "setup.sh: Python 3.11 is required, found $("$PY" --version)" >&2
    exit 1
fi

"$PY" -m pip install --quiet --upgrade pip
# torch first and alone: the pinned CPU/CUDA wheel is chosen before anything can ask for another build.
"$PY" -m pip install --quiet "torch==2.13.0"
# DeepSpeed builds no ops at install time; the few it needs are JIT-compiled on first use.
DS_BUILD_OPS=0 "$PY" -m pip install --quiet -e ".[decord,dev,demo]"
if [[ "${GPU:-0}" == "1" ]]; then
    "$PY" -m pip install --quiet -e ".[gpu,remote]" --no-build-isolation
fi
# decord 0.6.0's only Linux wheel is tagged cp36-manylinux2010: it imports and works on 3.11, but `pip check`
# reports it as "not supported on this platform". Every other finding fails the setup.
problems=$("$PY" -m pip check 2>&1 | grep -v '^decord 0.6.0 is not supported on this platform' | grep -v '^No broken requirements' || true)
if [[ -n "$problems" ]]; then
    echo "setup.sh: pip check found problems:" >&2
    echo "$problems" >&2
    exit 1
fi
echo "setup.sh: done ($("$PY" -c 'import vqathinker, torch; print("vqathinker", vqathinker.__version__, "torch", torch.__version__)'))"
