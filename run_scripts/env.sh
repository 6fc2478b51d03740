# Sourced by the run scripts: find (or create with setup.sh) the project's Python environment.
# Sets VQA_ROOT (the repository) and VQA_PY (the python to run), and puts its bin/ first on PATH.
VQA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
    VQA_PY="$VIRTUAL_ENV/bin/python"
elif [[ -n "${CONDA_PREFIX:-}" && "${CONDA_DEFAULT_ENV:-base}" != "base" ]]; then
    VQA_PY="$CONDA_PREFIX/bin/python"
else
    VQA_PY="$VQA_ROOT/${VENV_DIR:-.venv}/bin/python"
fi
if ! "$VQA_PY" -c "import vqathinker" >/dev/null 2>&1; then
    echo "vqathinker is not installed in this environment: running setup.sh first"
    bash "$VQA_ROOT/setup.sh"
fi
export PATH="$(dirname "$VQA_PY"):$PATH"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$VQA_ROOT/.torch_extensions}"
