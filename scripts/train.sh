#!/usr/bin/env bash
# Quickstart 1: set up .venv and train on the built-in Moving Digits data.
# Extra arguments are Hydra overrides:  ./scripts/train.sh loss=ssim trainer.epochs=5
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
setup_venv
exec .venv/bin/python -m framepred.train "$@"
