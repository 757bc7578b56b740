#!/usr/bin/env bash
# Quickstart 1: set up .venv and train on the built-in Moving Digits data.
# Extra arguments are Hydra overrides:  ./scripts/train.sh loss=ssim trainer.epochs=5
# It runs in the folder it is called from, so relative paths (data.path=clips/,
# hydra.run.dir=...) and outputs/ mean what they would for `python -m framepred.train`.
set -euo pipefail
FRAMEPRED_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$FRAMEPRED_ROOT/scripts/_setup.sh"
setup_venv
exec "$FRAMEPRED_ROOT/.venv/bin/python" -m framepred.train "$@"
