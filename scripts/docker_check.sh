#!/usr/bin/env bash
# The Docker check: builds the repository's Dockerfile and runs what docs/docker.md tells
# users to run, with podman, on a machine that cannot pull from Docker Hub:
#   1. makes a Debian base (mmdebstrap) with Python and pip from Debian's packages, and
#      imports it into podman;
#   2. builds the image on it (--build-arg BASE_IMAGE=<that base>): pip installs framepred
#      and TensorFlow from PyPI into the image's virtual environment;
#   3. runs `framepred-train debug=fast` in the container as its non-root user (uid 1000),
#      writing to a mounted outputs/, and checks that the checkpoint is on the host,
#      owned by uid 1000;
#   4. runs `framepred-evaluate` on that checkpoint in the container;
#   5. starts `tensorboard` in the container with its port published on the loopback
#      address, and fetches its list of runs (/data/runs), which must name the run;
#   6. cleans up: containers, images, podman's storage and the scratch folder.
# It prints each step's time and the image's size, and exits 1 when a step fails, 2 when
# the machine lacks what it needs. No GPU is used: the base has no CUDA, TensorFlow runs
# on the CPU. On the GPU image the same commands with `--gpus all` are what users run.
#
#   sudo bash scripts/docker_check.sh       # as root, at any folder
#
# Needs: podman, runc, mmdebstrap (Debian/Ubuntu: apt-get install podman runc mmdebstrap),
# root, and the network to a Debian mirror and PyPI. Minutes: the base is about 100 MB of
# Debian packages, TensorFlow about 600 MB from PyPI.
#
# podman gets a storage, containers.conf and runtime of its own under the scratch folder,
# so it leaves the machine's other containers and images alone:
#   containers.conf: [containers] default_ulimits = [] (a container may not raise limits
#   here) and [engine] cgroup_manager = "cgroupfs" (no systemd); the runtime is runc.
#
# Settings (environment variables):
#   DOCKER_CHECK_WORK=/tmp/framepred_docker_check   scratch folder (emptied first, removed
#                                                   at the end)
#   DOCKER_CHECK_KEEP=1         keep the scratch folder, the images and podman's storage
#   DOCKER_CHECK_SUITE=bookworm DOCKER_CHECK_MIRROR=http://deb.debian.org/debian
#   DOCKER_CHECK_PORT=16006     the loopback port TensorBoard is published on
#   DOCKER_CHECK_CA=<file>      a CA bundle for pip during the build, for a network whose
#                               proxy inspects TLS (default: $PIP_CERT when set); it is
#                               mounted for the build only, never copied into the image
set -uo pipefail

START=$SECONDS
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${DOCKER_CHECK_WORK:-/tmp/framepred_docker_check}"
KEEP="${DOCKER_CHECK_KEEP:-0}"
SUITE="${DOCKER_CHECK_SUITE:-bookworm}"
MIRROR="${DOCKER_CHECK_MIRROR:-http://deb.debian.org/debian}"
PORT="${DOCKER_CHECK_PORT:-16006}"
CA="${DOCKER_CHECK_CA:-${PIP_CERT:-}}"
BASE=localhost/framepred-check-base:$SUITE
IMAGE=localhost/framepred-check:latest
TB_NAME=framepred-check-tensorboard

say() { printf '[docker_check %4ds] %s\n' "$((SECONDS - START))" "$*"; }
die() { say "error: $*"; exit 2; }

# --- what the machine needs ---------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run it as root (mmdebstrap and podman's storage need it)"
for tool in podman runc mmdebstrap curl; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install podman runc mmdebstrap curl)"
done
[ -z "$CA" ] || [ -r "$CA" ] || die "DOCKER_CHECK_CA=$CA is not a readable file"

rm -rf "$WORK"
mkdir -p "$WORK/outputs" || die "cannot write $WORK"
cat > "$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
EOF
export CONTAINERS_CONF="$WORK/containers.conf"
pm() {
  podman --root "$WORK/storage" --runroot "$WORK/run" --runtime runc "$@"
}

cleanup() {
  if [ "$KEEP" = 1 ]; then
    say "kept $WORK (DOCKER_CHECK_KEEP=1); remove with:"
    say "  podman --root $WORK/storage --runroot $WORK/run system reset --force && rm -rf $WORK"
    return
  fi
  pm rm --force --ignore "$TB_NAME" >/dev/null 2>&1
  pm system reset --force >/dev/null 2>&1
  rm -rf "$WORK"
}

# Each step's name, seconds and result, for the table at the end.
STEPS=()
FAILED=0
step_start() { STEP_NAME="$1"; STEP_T0=$SECONDS; say "--- $1"; }
step_end() {  # step_end ok|FAILED [detail]
  local result="$1"; shift
  STEPS+=("$(printf '| %s | %d | %s %s |' "$STEP_NAME" "$((SECONDS - STEP_T0))" "$result" "$*")")
  [ "$result" = ok ] || FAILED=1
  say "$STEP_NAME: $result $* ($((SECONDS - STEP_T0)) s)"
}
report() {
  echo
  echo "| step | s | result |"
  echo "|---|---:|---|"
  printf '%s\n' "${STEPS[@]}"
  echo
  say "total $((SECONDS - START)) s; GPU: none (the base has no CUDA; TensorFlow ran on the CPU)"
}
finish() {
  step_start "6. clean up"
  cleanup
  if [ "$KEEP" = 1 ] || [ ! -e "$WORK" ]; then step_end ok; else step_end FAILED "$WORK is left"; fi
  report
  exit "$FAILED"
}
trap 'say "interrupted"; FAILED=1; finish' INT TERM
# Whatever else ends it early (a bug here) still leaves no storage behind.
trap '[ "$KEEP" = 1 ] || [ ! -e "$WORK" ] || cleanup' EXIT

# --- 1. a Debian base with Python from Debian's packages --------------------------------
step_start "1. Debian base (mmdebstrap $SUITE) + podman import"
# python-is-python3: the Dockerfile calls `python`, as the GPU image provides it;
# passwd: useradd. Documentation is left out: nobody reads it in the image.
if mmdebstrap --variant=minbase --quiet \
     --include=python3,python3-pip,python-is-python3,ca-certificates,passwd \
     --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
     --dpkgopt='path-exclude=/usr/share/locale/*' \
     "$SUITE" "$WORK/base.tar" "$MIRROR" > "$WORK/mmdebstrap.log" 2>&1 \
   && pm import --quiet "$WORK/base.tar" "$BASE" > /dev/null; then
  rm -f "$WORK/base.tar"
  step_end ok "$(pm run --rm "$BASE" python --version 2>&1), $(pm image inspect --format '{{.Size}}' "$BASE" | awk '{printf "%.0f MB", $1/1e6}')"
else
  tail -20 "$WORK/mmdebstrap.log"
  step_end FAILED
  finish
fi

# --- 2. the image, on that base -------------------------------------------------------
step_start "2. podman build --build-arg BASE_IMAGE=$BASE"
build_args=(--build-arg "BASE_IMAGE=$BASE" --tag "$IMAGE" --file "$REPO/Dockerfile")
# pip trusts what the image's CA bundle trusts; behind a TLS-inspecting proxy the host's
# bundle stands in for it while the image builds (a mount: the image never holds it).
[ -n "$CA" ] && build_args+=(--volume "$(readlink -f "$CA"):/etc/ssl/certs/ca-certificates.crt:ro")
if pm build "${build_args[@]}" "$REPO" > "$WORK/build.log" 2>&1; then
  grep -E '^(STEP|Successfully installed)' "$WORK/build.log" | cut -c1-300
  size="$(pm image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1/1e9}')"
  # From the working folder, /app, as users' commands run: the installed package answers.
  versions="$(pm run --rm --entrypoint python "$IMAGE" -c 'import framepred, keras, tensorflow as tf
print(f"framepred from {framepred.__file__}, TensorFlow {tf.__version__}, Keras {keras.__version__},",
      len(tf.config.list_physical_devices("GPU")), "GPU(s)")' 2>/dev/null)"
  step_end ok "image $size; $versions"
else
  tail -30 "$WORK/build.log"
  step_end FAILED
  finish
fi

# --- 3. train as the image's user, into a mounted outputs/ -----------------------------
step_start "3. framepred-train debug=fast (uid 1000, outputs/ mounted)"
chown 1000:1000 "$WORK/outputs"  # what `mkdir outputs` gives the first user on a Linux host
mount=(--volume "$WORK/outputs:/app/outputs")
pm run --rm "${mount[@]}" "$IMAGE" debug=fast 2>&1 | tee "$WORK/train.log" | tail -25
train_status=${PIPESTATUS[0]}
checkpoint="$(cd "$WORK" && find outputs -path '*/checkpoints/best.keras' | head -1)"
owner="$( [ -n "$checkpoint" ] && stat -c %u "$WORK/$checkpoint")"
if [ "$train_status" = 0 ] && [ -n "$checkpoint" ] && [ "$owner" = 1000 ]; then
  step_end ok "$checkpoint, owner uid $owner"
else
  step_end FAILED "exit $train_status, checkpoint '${checkpoint:-none}', owner uid ${owner:-none}"
  finish
fi

# --- 4. evaluate that checkpoint ------------------------------------------------------
step_start "4. framepred-evaluate checkpoint=$checkpoint"
pm run --rm "${mount[@]}" --entrypoint framepred-evaluate "$IMAGE" "checkpoint=$checkpoint" \
  2>&1 | tee "$WORK/evaluate.log" | tail -25
eval_status=${PIPESTATUS[0]}
metrics="$(cd "$WORK" && find outputs/evaluate -name metrics.json 2>/dev/null | head -1)"
if [ "$eval_status" = 0 ] && [ -n "$metrics" ]; then
  step_end ok "$metrics"
else
  step_end FAILED "exit $eval_status, metrics.json '${metrics:-none}'"
fi

# --- 5. TensorBoard, fetched on the loopback address ----------------------------------
step_start "5. tensorboard --logdir outputs, GET http://127.0.0.1:$PORT/data/runs"
run_name="$(basename "$(dirname "$(dirname "$checkpoint")")")"
pm run --detach --name "$TB_NAME" "${mount[@]}" --publish "127.0.0.1:$PORT:6006" \
  --entrypoint tensorboard "$IMAGE" --logdir outputs --bind_all > /dev/null
runs=""
for _ in $(seq 60); do
  runs="$(curl --silent --fail --max-time 5 "http://127.0.0.1:$PORT/data/runs")" && break
  sleep 1
done
page="$(curl --silent --fail --max-time 5 "http://127.0.0.1:$PORT/")"
if [ -n "$runs" ] && grep -q "$run_name" <<< "$runs" && grep -qi tensorboard <<< "$page"; then
  say "/data/runs: $runs"
  step_end ok "$(grep -o "\"framepred/$run_name[^\"]*\"" <<< "$runs" | wc -l) runs of $run_name listed; / is TensorBoard's page"
else
  pm logs "$TB_NAME" 2>&1 | tail -20
  step_end FAILED "runs: '${runs:-no answer}', expected one naming $run_name; / gave ${#page} characters"
fi
pm rm --force "$TB_NAME" > /dev/null 2>&1

finish
