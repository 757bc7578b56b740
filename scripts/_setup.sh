# Sourced by train.sh and test.sh: create (or reuse) .venv and install framepred into it.
# Usage: setup_venv [extras]   e.g. setup_venv dev
setup_venv() {
  local extras="${1:-}"
  local python="${PYTHON:-python3}"
  local spec="."
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($python --version)"
    "$python" -m venv .venv
  fi
  # Reinstall only when pyproject.toml or the requested extras change.
  local stamp=".venv/.framepred-installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras:-base}"
  if [ ! -f "$stamp" ]; then
    echo "[setup] installing framepred${extras:+[$extras]} into .venv (first run takes a few minutes)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e "$spec"
    rm -f .venv/.framepred-installed-*
    touch "$stamp"
  fi
}
