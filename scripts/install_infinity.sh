#!/usr/bin/env bash
# Install Infinity (infinity-emb 0.0.78, CPU torch) into its own virtual environment and print
# the RERANK_EVAL_INFINITY line that points the tests (tests/test_infinity_server.py) and
# configs at its executable.
#
# Why not a `servers` extra of this package: infinity-emb 0.0.78 requires numpy < 2, and its
# `torch` extra sentence-transformers < 4 and transformers <= 5.0; installed beside this project
# (transformers 5.x, numpy 2) pip downgrades numpy and huggingface_hub and leaves transformers
# broken. A server is a separate process anyway: give it its own environment, as a deployment does.
#
#   scripts/install_infinity.sh [VENV_DIR]      # default .venv-infinity
set -euo pipefail
venv="${1:-.venv-infinity}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q torch==2.13.0 "infinity-emb[server,torch]==0.0.78"
"$venv/bin/infinity_emb" --help > /dev/null
echo "export RERANK_EVAL_INFINITY=$(cd "$venv" && pwd)/bin/infinity_emb"
