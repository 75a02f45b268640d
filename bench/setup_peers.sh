#!/usr/bin/env bash
# Creates bench/.venv-peers with AutoGluon (tabular) for bench/quality.py, apart from the
# project's own venv so its pins never touch Tabpilot's. CPU only: torch is installed first,
# pinned, so that AutoGluon's torch requirement cannot pull a multi-GB CUDA build.
#
#   bash bench/setup_peers.sh            # create or update the venv
#   PYTHON=python3.12 bash bench/setup_peers.sh
set -euo pipefail

cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
VENV=".venv-peers"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
AUTOGLUON_VERSION="${AUTOGLUON_VERSION:-1.6.3}"
# The model families of presets="medium_quality": GBM, CAT, XGB, RF, XT, KNN, NN_TORCH, FASTAI.
AUTOGLUON_EXTRAS="lightgbm,catboost,xgboost,fastai"

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet)
"${PIP[@]}" --upgrade pip

constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==$TORCH_VERSION" >"$constraints"

# The CPU build: pip's configured wheel folders may hold a local torch-X+cpu wheel; otherwise
# PyTorch's CPU index is the way to avoid CUDA (set TORCH_INDEX_URL for it).
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${PIP[@]}" --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"
else
    "${PIP[@]}" "torch==$TORCH_VERSION"
fi
"${PIP[@]}" -c "$constraints" "autogluon.tabular[$AUTOGLUON_EXTRAS]==$AUTOGLUON_VERSION"

if "$VENV/bin/python" -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
    echo "warning: CUDA packages were installed into bench/$VENV (nvidia-*); expected a CPU build" >&2
fi
"$VENV/bin/python" -c "import autogluon.tabular, torch; print('AutoGluon', autogluon.tabular.__version__, '| torch', torch.__version__)"
