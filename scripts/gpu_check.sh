#!/usr/bin/env bash
# The GPU check: on a machine with JAX (+CUDA), Python, numpy, h5py and Pillow, but no
# TensorFlow and no package registry, in under 8 minutes:
#   1. installs the wheels of .whl/ (keras, hydra, tensorboard, pytest and their small
#      dependencies; never jax, numpy, ml_dtypes or h5py: the machine's own are used);
#   2. runs the tests that need no TensorFlow, under KERAS_BACKEND=jax;
#   3. times `framepred.train.train()` on experiment=moving_mnist for a fixed number of
#      steps, float32 and mixed_bfloat16, each with trainer.steps_per_execution 1 and 8,
#      through `scripts/bench_train_path.py` (frames/s of the Throughput callback,
#      TFLOP/s counted from the weight shapes, % of PEAK_TFLOPS, bf16/f32);
#   4. times one ConvLSTM layer of that model (scripts/bench_convlstm.py): Keras' own
#      loop against the matrix-product form framepred takes on CPUs, forced on the GPU;
#   5. writes the tables to ${OUT:-.}/gpu_check.md (or the path given as $1) and prints them.
# Exits 1 when the tests fail, 2 when the environment is unusable, 3 when a timed run
# fails (the table still says which).
#
#   bash scripts/gpu_check.sh                       # on the GPU machine, at the repo root
#   bash scripts/gpu_check.sh /tmp/out/gpu_check.md
#
# MNIST digits are not on that machine and must not be downloaded, so the data is the
# built-in Moving Digits with 28x28-pixel glyphs (data.source=moving_digits
# data.digit_size=[28,28]): the same 64x64 frames, 10 -> 10 window and model as
# experiment=moving_mnist. The windows are cached in memory (data.cache=memory,
# data.train_sequences = batch x steps), so epochs 2.. time the device, not Pillow.
#
# Settings (environment variables):
#   PEAK_TFLOPS=989          the device's bf16 dense peak (H200: 989; H100 SXM: 989; A100: 312)
#   GPU_CHECK_PYTHON=python3 the interpreter that has JAX
#   GPU_CHECK_WHEELS=.whl    folder of wheels to install; empty: install nothing and use
#                            the interpreter's own packages (a dry run with .venv)
#   GPU_CHECK_WORK=/tmp/framepred_gpu_check   scratch folder (emptied first)
#   GPU_CHECK_STEPS=64       training steps per epoch; GPU_CHECK_EPOCHS=3 (frames/s: median
#                            of epochs 2..)
#   GPU_CHECK_PRECISIONS=float32,mixed_bfloat16   GPU_CHECK_SPE=1,8
#   GPU_CHECK_TESTS="..."    the pytest arguments (default: the no-TensorFlow subset below)
#   GPU_CHECK_MARK="not slow"  pytest -m expression; empty: the slow tests too
#   GPU_CHECK_BUDGET_S=450   the whole script's time; the timed runs get what the tests
#                            leave (a run cut short is reported as such)
#   GPU_CHECK_QUICK=1        a CPU dry run in a few minutes: a few fast tests, 16x16
#                            frames, a small model, 8 steps
#   GPU_CHECK_EXTRA="..."    more Hydra overrides for the timed runs
# A dry run here, TensorFlow made unimportable:
#   GPU_CHECK_QUICK=1 GPU_CHECK_PYTHON=.venv/bin/python GPU_CHECK_WHEELS= bash scripts/gpu_check.sh
set -uo pipefail

START=$SECONDS
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
PY="${GPU_CHECK_PYTHON:-python3}"
WHEELS="${GPU_CHECK_WHEELS-.whl}"
WORK="${GPU_CHECK_WORK:-/tmp/framepred_gpu_check}"
REPORT="${1:-${OUT:-.}/gpu_check.md}"
PEAK_TFLOPS="${PEAK_TFLOPS:-989}"
QUICK="${GPU_CHECK_QUICK:-0}"
BUDGET="${GPU_CHECK_BUDGET_S:-450}"
PRECISIONS="${GPU_CHECK_PRECISIONS:-float32,mixed_bfloat16}"
SPE="${GPU_CHECK_SPE:-1,8}"
EPOCHS="${GPU_CHECK_EPOCHS:-3}"

# The tests that pass without TensorFlow (checked with TensorFlow made unimportable).
# Left out: modules importing tensorflow (test_losses, test_metrics, test_ssim_backends,
# test_devices, test_data_batches), and those written for the TensorFlow backend; and
# the three `slow` ones (a two-process job on the CPU, bench_train --synthetic, profiling):
# CI runs them, and here they would take time from the timed runs.
DEFAULT_TESTS="tests/test_architecture.py tests/test_config.py tests/test_optimizers.py
  tests/test_nan_guard.py tests/test_dashboards.py tests/test_jax_backend.py
  tests/test_jax_training.py tests/test_sampling.py::test_scheduled_run_under_jax"
if [ "$QUICK" = 1 ]; then
  DEFAULT_TESTS="tests/test_architecture.py tests/test_config.py tests/test_optimizers.py
  tests/test_jax_backend.py::test_model_losses_and_data_parallel_step_under_jax"
  STEPS="${GPU_CHECK_STEPS:-8}"
  BATCH=4
  SIZE_OVERRIDES="data.frame_size=[16,16] data.digit_size=[6,9] model.filters=[8,8]
    model.kernel_size=[3,3] trainer.batch_size=$BATCH data.val_sequences=$BATCH"
else
  STEPS="${GPU_CHECK_STEPS:-64}"
  BATCH=16  # experiment=moving_mnist's
  SIZE_OVERRIDES="data.digit_size=[28,28]"
fi
TESTS="${GPU_CHECK_TESTS:-$DEFAULT_TESTS}"
MARK="${GPU_CHECK_MARK-not slow}"

say() { printf '[gpu_check %3ds] %s\n' "$((SECONDS - START))" "$*"; }
die() { say "error: $*"; exit 2; }

# --- 1. the environment -------------------------------------------------------------
rm -rf "$WORK"
mkdir -p "$WORK/no-tensorflow/tensorflow" "$(dirname "$REPORT")" || die "cannot write $WORK"
# As on a machine without TensorFlow (a no-op there): `import tensorflow` fails.
echo "raise ModuleNotFoundError(\"No module named 'tensorflow' (gpu_check.sh)\", name='tensorflow')" \
  > "$WORK/no-tensorflow/tensorflow/__init__.py"
SITE="$WORK/site"
mkdir -p "$SITE"
shopt -s nullglob
wheels=()
[ -n "$WHEELS" ] && wheels=("$WHEELS"/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
  say "installing ${#wheels[@]} wheels from $WHEELS into $SITE"
  if "$PY" -m pip --version >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --disable-pip-version-check \
      --target "$SITE" "${wheels[@]}" || die "pip could not install the wheels of $WHEELS"
  else  # no pip: a wheel is a zip of what goes into site-packages
    for wheel in "${wheels[@]}"; do
      "$PY" -m zipfile -e "$wheel" "$SITE" || die "cannot unpack $wheel"
    done
  fi
elif [ -n "$WHEELS" ]; then
  say "no wheels in '$WHEELS': using the packages $PY already has"
fi

# Some tests start interpreters with a PYTHONPATH of their own, so the wheels must be
# found without it: a throwaway venv of the same interpreter whose .pth file lists the
# wheels, the repository and every folder of $PY's own sys.path.
PYBIN="$PY"
if "$PY" -m venv --without-pip "$WORK/venv" >/dev/null 2>&1; then
  purelib="$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  "$PY" - "$WORK" "$SITE" "$REPO" > "$purelib/framepred_gpu_check.pth" <<'EOF' || die "cannot write the .pth file"
import os, sys
work, site_dir, repo = sys.argv[1:4]
print(os.path.join(work, "no-tensorflow"))
print(site_dir)
print(repo)
outer = [p for p in sys.path if p and os.path.isdir(p)]
print("import site; list(map(site.addsitedir, %r))" % outer)  # one line, executed
EOF
  PYBIN="$WORK/venv/bin/python"
else
  say "warning: '$PY -m venv' failed: relying on PYTHONPATH alone, so tests that set their own" \
      "PYTHONPATH (tests/test_jax_training.py) may not find the wheels"
fi
export PYTHONPATH="$WORK/no-tensorflow:$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=jax TF_CPP_MIN_LOG_LEVEL=3
unset HYDRA_FULL_ERROR

"$PYBIN" - > "$WORK/env.txt" 2> "$WORK/env.err" <<'EOF' || { cat "$WORK/env.err"; die "the packages above do not import"; }
import importlib.util, platform, sys


def found(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # its parent package is missing
        return False


missing = [m for m in ("jax", "numpy", "h5py", "PIL", "keras", "hydra", "omegaconf", "tensorboard",
                       "google.protobuf", "yaml", "rich", "absl", "optree", "pytest")
           if not found(m)]
if missing:
    sys.exit(f"missing: {', '.join(missing)} (add their wheels to .whl/)")
import jax, keras, numpy
import framepred.train  # noqa: F401  (the whole entry point, without TensorFlow)
devices = jax.devices()
print(f"Python {platform.python_version()} | jax {jax.__version__} ({jax.default_backend()}: "
      f"{len(devices)} x {devices[0].device_kind}) | keras {keras.__version__} "
      f"(backend {keras.backend.backend()}) | numpy {numpy.__version__}")
print(devices[0].device_kind if devices[0].platform == "gpu" else "")
EOF
ENV_LINE="$(sed -n 1p "$WORK/env.txt")"
MACHINE="$(sed -n 2p "$WORK/env.txt")"
[ -n "$MACHINE" ] || MACHINE="$(nproc)-core CPU ($(uname -n)), no GPU"
say "$ENV_LINE"

# --- 2. the tests -------------------------------------------------------------------
left=$((BUDGET - (SECONDS - START)))
test_limit=$(( left > 120 ? left * 45 / 100 : 60 ))
say "tests (limit ${test_limit} s)${MARK:+, -m '$MARK'}: $(echo $TESTS)"
marks=()
[ -n "$MARK" ] && marks=(-m "$MARK")
# No preallocation: tests start JAX interpreters of their own next to pytest's.
# shellcheck disable=SC2086  # TESTS is a list of pytest arguments
XLA_PYTHON_CLIENT_PREALLOCATE=false timeout "$test_limit" "$PYBIN" -m pytest -q -rs \
  -p no:cacheprovider ${marks[@]+"${marks[@]}"} $TESTS > "$WORK/tests.log" 2>&1
TESTS_RC=$?
TESTS_SUMMARY="$(grep -E '(passed|failed|error|no tests ran)' "$WORK/tests.log" | tail -1)"
[ "$TESTS_RC" = 124 ] && TESTS_SUMMARY="timed out after ${test_limit} s: $TESTS_SUMMARY"
say "tests: exit $TESTS_RC | $TESTS_SUMMARY"
[ "$TESTS_RC" = 0 ] || tail -40 "$WORK/tests.log"

# --- 3. the timed training runs -----------------------------------------------------
left=$((BUDGET - (SECONDS - START) - 70))  # 60 s kept for step 4
[ "$left" -gt 30 ] || left=30
OVERRIDES="experiment=moving_mnist data.source=moving_digits $SIZE_OVERRIDES
  data.cache=memory data.train_sequences=$((BATCH * STEPS)) ${GPU_CHECK_EXTRA:-}"
{
  echo "# framepred GPU check ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  echo "- machine: $MACHINE | $ENV_LINE"
  echo "- tests (TensorFlow unimportable, KERAS_BACKEND=jax): exit $TESTS_RC | $TESTS_SUMMARY"
  echo "  (${MARK:+-m '$MARK' }$(echo $TESTS))"
  if [ "$QUICK" = 1 ]; then
    echo "- GPU_CHECK_QUICK=1, a dry run: Moving Digits at 16x16, a small model (2 x 8 filters),"
    echo "  batch $BATCH; not the benchmark."
  else
    echo "- data: Moving Digits (data.source=moving_digits) with 28x28 glyphs instead of MNIST"
    echo "  digits (not on this machine): the same 64x64 frames, 10 -> 10 window and model as"
    echo "  experiment=moving_mnist."
  fi
  echo "- windows cached in memory (data.cache=memory, $((BATCH * STEPS)) training windows = one"
  echo "  epoch), so epochs 2.. time training, not the data generator."
  echo "- % of peak: achieved TFLOP/s / PEAK_TFLOPS=$PEAK_TFLOPS (the bf16 dense peak; float32"
  echo "  rows are set against it too). FLOPs: ConvLSTM + Conv3D multiply-adds x2 from the"
  echo "  weight shapes, a training step = 3 x forward (scripts/bench_train.py)."
  echo
} > "$REPORT"
say "timed runs (limit ${left} s): $STEPS steps x $EPOCHS epochs, precisions $PRECISIONS," \
    "steps per execution $SPE"
# shellcheck disable=SC2086
"$PYBIN" scripts/bench_train_path.py --backends jax --overrides "$OVERRIDES" \
  --precisions "$PRECISIONS" --steps-per-execution "$SPE" --train-steps "$STEPS" \
  --epochs "$EPOCHS" --peak-tflops "$PEAK_TFLOPS" --machine "$MACHINE" \
  --markdown "$REPORT" --json "$WORK/train_path.json" --timeout "$left" \
  > "$WORK/bench.log" 2> "$WORK/bench.err"
BENCH_RC=$?
grep -E '^  \[' "$WORK/bench.err"
[ "$BENCH_RC" = 0 ] || { echo "bench_train_path.py exit $BENCH_RC; its stderr ends:"; tail -30 "$WORK/bench.err"; }
grep -q '^| ' "$REPORT" || tail -20 "$WORK/bench.log" >> "$REPORT"

# One ConvLSTM layer of the model (16x16 patches of 16 channels -> 128 filters, kernel 5;
# tiny in the dry run): is the CPU's matrix-product form worth taking on the GPU too?
left=$((BUDGET - (SECONDS - START)))
if [ "$left" -gt 40 ]; then
  if [ "$QUICK" = 1 ]; then LAYER="--shape 2,3,4,4,4 --filters 8 --kernel 3"; else
    LAYER="--shape $BATCH,10,16,16,16 --filters 128 --kernel 5"; fi
  say "one ConvLSTM layer (limit ${left} s): $LAYER"
  # shellcheck disable=SC2086
  LAYER_OUT="$(timeout "$left" "$PYBIN" scripts/bench_convlstm.py $LAYER --no-unroll \
    --force-matmul 2> "$WORK/layer.err")" || LAYER_OUT="$LAYER_OUT
(bench_convlstm.py failed or ran out of time: $(tail -3 "$WORK/layer.err"))"
  { echo; echo '```'; echo "$LAYER_OUT"; echo '```'; } >> "$REPORT"
else
  echo "- no time left for the one-layer comparison" >> "$REPORT"
fi

echo
cat "$REPORT"
say "report: $REPORT (tests exit $TESTS_RC, timed runs exit $BENCH_RC; logs in $WORK)"
[ "$TESTS_RC" = 0 ] || exit 1
[ "$BENCH_RC" = 0 ] || exit 3
exit 0
