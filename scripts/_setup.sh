# Sourced by train.sh and test.sh: create (or reuse) .venv in the checkout and install
# framepred into it. Usage: setup_venv [extras]   e.g. setup_venv dev
# Runs in a subshell at the checkout's root, so the caller's folder is left as it is.
setup_venv() (
  local extras="${1:-}"
  local python="${PYTHON:-python3}"
  local spec="."
  cd "$FRAMEPRED_ROOT"
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($python --version)"
    "$python" -m venv .venv
  fi
  # Reinstall only when pyproject.toml changes, or when extras are asked for that the
  # last install lacks (train.sh after test.sh reuses test.sh's superset).
  local hash stamp candidate wanted have missing
  hash="$(sha256sum pyproject.toml | cut -c1-16)"
  stamp=""
  for candidate in .venv/.framepred-installed-"$hash"-*; do
    [ -e "$candidate" ] && stamp="$candidate"
  done
  if [ -n "$stamp" ]; then
    have=",${stamp##*-},"
    missing=""
    for wanted in ${extras//,/ }; do
      [[ "$have" == *",$wanted,"* ]] || missing=1
    done
    [ -z "$missing" ] && return 0
  fi
  echo "[setup] installing framepred${extras:+[$extras]} into .venv (first run takes a few minutes)"
  # uv fetches and unpacks the wheels in parallel: about 35 s for TensorFlow, JAX and the
  # rest from a cold cache on CI's 2 cores, where pip takes about 57 s. pip does it
  # where uv cannot be had or fails (an index only pip's own configuration names).
  if ! { .venv/bin/python -m pip install --quiet uv \
         && .venv/bin/uv pip install --quiet --python .venv/bin/python --compile-bytecode \
              -e "$spec"; }; then
    echo "[setup] uv unavailable or failed; installing with pip"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e "$spec"
  fi
  rm -f .venv/.framepred-installed-*
  touch ".venv/.framepred-installed-$hash-${extras:-base}"
)
