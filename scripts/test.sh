#!/usr/bin/env bash
# Quickstart 2: set up .venv with the dev, video, jax and weather extras (so the mp4
# reader, the JAX-backend tests and the HDF5 / netCDF sources run too) and run the whole
# test suite, slow tests included, on two workers (pytest-xdist), a file to a worker, and
# print the 15 slowest tests. Budget: 480 s from a fresh clone on CI's 2 cores, set-up
# included (docs/architecture.md#tests). Extra arguments go to pytest:
#   ./scripts/test.sh -m "not slow"      ./scripts/test.sh -n 0 tests/test_train.py
set -euo pipefail
FRAMEPRED_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$FRAMEPRED_ROOT"
source scripts/_setup.sh
setup_venv "dev,video,jax,weather"
exec .venv/bin/python -m pytest -q -rs -n 2 --dist loadfile --no-loadscope-reorder \
  --durations=15 "$@"
