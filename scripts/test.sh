#!/usr/bin/env bash
# Quickstart 2: set up .venv with the dev, video, jax and weather extras (so the mp4
# reader, the JAX-backend tests and the HDF5 / netCDF sources run too) and run the whole
# test suite, slow tests included. Extra arguments go to pytest:  ./scripts/test.sh -m "not slow"
set -euo pipefail
FRAMEPRED_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$FRAMEPRED_ROOT"
source scripts/_setup.sh
setup_venv "dev,video,jax,weather"
exec .venv/bin/python -m pytest -q -rs "$@"
