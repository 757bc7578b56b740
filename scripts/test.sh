#!/usr/bin/env bash
# Quickstart 2: set up .venv with the dev, video and jax extras (so the mp4 reader and
# the JAX-backend tests run too) and run the whole test suite,
# slow tests included. Extra arguments go to pytest:  ./scripts/test.sh -m "not slow"
set -euo pipefail
FRAMEPRED_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$FRAMEPRED_ROOT"
source scripts/_setup.sh
setup_venv "dev,video,jax"
exec .venv/bin/python -m pytest -q -rs "$@"
