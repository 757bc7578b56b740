"""Devices, precision, compilation and distribution for a run.

`configure(cfg.trainer)` is the one place a run touches process-wide TensorFlow and
Keras state: logical devices, seeds, the global dtype policy, the strategy.

- `trainer.virtual_cpu_devices=N` splits the CPU into N logical devices, so a
  `trainer.distribution=mirrored` run has N replicas without a GPU (the tests use
  N=2). TensorFlow fixes its devices the first time it uses them, so this only
  takes effect in a fresh process, before anything has run on a device; a later
  run in the same process (a sweep) may keep the same N, and a different N is a
  user error (FramepredError), never a silent single-device run.
- `trainer.precision`: float32, mixed_float16 or mixed_bfloat16, as Keras' global
  dtype policy. Under mixed_float16 `Model.compile` wraps the optimizer in
  `LossScaleOptimizer` (dynamic loss scaling; keras/src/trainers/trainer.py,
  `auto_scale_loss=True`). The model's head and the losses stay float32.
- `trainer.jit_compile`: auto = XLA on GPUs only. On the 2-core CPU sandbox XLA
  trained the default model 13x slower than TensorFlow's own kernels (63.9 -> 4.8
  frames/s, scripts/bench_train.py, docs/performance.md), while on GPUs it fuses
  the ConvLSTM gate math.
- `trainer.distribution=mirrored` (TensorFlow): `tf.distribute.MirroredStrategy`
  over every local GPU (or every logical CPU device when there is no GPU). The data
  pipeline batches with the global batch = per-replica batch x replicas. Keras 3
  `model.fit` fails under `MultiWorkerMirroredStrategy` (keras-team/keras#20585), so
  TensorFlow stays on one host.
- `trainer.distribution=data_parallel` (JAX): `keras.distribution.DataParallel` over
  every device of every process; `trainer.batch_size` stays per device. Several
  processes (hosts) join through `jax.distributed.initialize` with
  `trainer.coordinator` / `num_processes` / `process_id` (or jax's JAX_COORDINATOR_ADDRESS,
  JAX_NUM_PROCESSES, JAX_PROCESS_ID); on CPUs their collectives go through gloo. Each
  process feeds its own slice of every global batch, and only process 0 writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from framepred.console import native_start_up
from framepred.errors import FramepredError

log = logging.getLogger(__name__)

@dataclass
class Setup:
    jit_compile: bool
    precision: str
    device: str
    replicas: int = 1  # devices a global batch is split over, every process's
    strategy: Any = None  # TensorFlow's tf.distribute strategy
    process: int = 0
    processes: int = 1

    def scope(self):
        """Where the model and optimizer are built (the strategy's scope on TensorFlow)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def global_batch(self, per_replica: int) -> int:
        return int(per_replica) * self.replicas

    @property
    def chief(self) -> bool:
        """Process 0: the one that writes checkpoints, TensorBoard and metrics."""
        return self.process == 0

    @property
    def sharded(self) -> bool:
        """Whether keras.distribution splits each global batch over devices. Those
        batches must divide evenly, so a short last batch is left out (tf.distribute
        splits it unevenly instead)."""
        return self.strategy is None and self.replicas > 1

    @property
    def shard(self) -> tuple[int, int]:
        """(this process, every process): the slice of each global batch read here."""
        return self.process, self.processes


# --- TensorFlow ---------------------------------------------------------------------


def describe_devices() -> str:
    if keras.backend.backend() != "tensorflow":
        import jax

        local = jax.local_devices()
        kinds = sorted({d.device_kind for d in local})
        where = (f", process {jax.process_index()} of {jax.process_count()}"
                 if jax.process_count() > 1 else "")
        return f"{len(local)} {local[0].platform.upper()} ({', '.join(kinds)}){where}"
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        names = []
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        return f"{len(gpus)} GPU ({', '.join(sorted(set(names)))})"
    return f"CPU ({len(tf.config.list_logical_devices('CPU'))} logical device(s))"


def has_gpu() -> bool:
    if keras.backend.backend() == "jax":
        import jax

        return jax.default_backend() == "gpu"
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_jit(option: Any) -> bool:
    """`trainer.jit_compile` -> XLA or not: auto = on GPUs only (measured on the CPU: 13x
    slower for our default model), always, never. JAX always compiles with XLA; the
    option only matters to TensorFlow."""
    if option == "auto":
        return keras.backend.backend() == "jax" or has_gpu()
    return option == "always"


def split_cpu(count: int) -> None:
    """Splits the first CPU into `count` logical devices; must run before TF uses them."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:
        # TensorFlow has initialized its devices (an earlier run in this process).
        present = len(tf.config.list_logical_devices("CPU"))
        if present != count:
            raise FramepredError(
                f"trainer.virtual_cpu_devices={count} cannot take effect: TensorFlow already "
                f"initialized {present} CPU device(s) in this process. Start a fresh process "
                "(python -m framepred.train ...) with the same value for every run in it"
            ) from None


def build_strategy(distribution: str):
    import tensorflow as tf

    if distribution != "mirrored":
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    if len(devices) == 1:
        log.warning("trainer.distribution=mirrored found one device (%s): one replica",
                    devices[0])
    return tf.distribute.MirroredStrategy(devices)


# --- JAX ------------------------------------------------------------------------------


def process_identity(trainer: Any) -> tuple[str | None, int, int]:
    """(coordinator, process id, process count) of this process: the trainer keys, else
    the environment jax.distributed reads; (None, 0, 1) for a one-process run."""
    coordinator = trainer.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    processes = trainer.num_processes or int(os.environ.get("JAX_NUM_PROCESSES", 0) or 1)
    process = trainer.process_id
    if process is None:
        process = int(os.environ.get("JAX_PROCESS_ID", 0) or 0)
    if process >= processes:
        raise FramepredError(
            f"trainer.process_id={process} must be below trainer.num_processes={processes} "
            f"(processes are numbered 0 ... {processes - 1})")
    if processes > 1 and not coordinator:
        raise FramepredError(
            f"trainer.num_processes={processes} needs trainer.coordinator=HOST:PORT, the "
            "address of process 0 that every process can reach")
    return coordinator, int(process), int(processes)


def split_jax_cpu(count: int) -> None:
    """`count` XLA CPU devices; must run before JAX initializes its backends."""
    import jax

    if jax.config.jax_num_cpu_devices == count:
        return
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:
        present = len(jax.devices("cpu"))
        if present != count:
            raise FramepredError(
                f"trainer.virtual_cpu_devices={count} cannot take effect: JAX already "
                f"initialized {present} CPU device(s) in this process. Start a fresh process "
                "with the same value for every run in it") from None


def join_processes(coordinator: str, process: int, processes: int, timeout: int) -> None:
    """`jax.distributed.initialize`: blocks until all `processes` have connected."""
    import time

    import jax

    if jax.distributed.is_initialized():
        return
    # CPU devices exchange gradients through gloo (jax has no CPU collectives by
    # default); GPUs keep NCCL, which this setting does not touch.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # jax's preemption service takes SIGTERM for its own sync points, which framepred
    # does not use, and otherwise ignores it: a job could then not be stopped outside
    # fit(), where `run.resume.graceful_stop` handles it.
    jax.config.update("jax_enable_preemption_service", False)
    log.info("process %d of %d: joining the job at %s (trainer.coordinator_timeout=%d s)",
             process, processes, coordinator, timeout)
    started = time.monotonic()
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise FramepredError(f"trainer.coordinator={coordinator} is not HOST:PORT "
                             "(for example 10.0.0.1:1234)")
    if process != 0:
        # jax aborts the whole process (no Python exception) when the coordinator
        # stays unreachable: find out first, with a clear message.
        _wait_for_coordinator(host, int(port), timeout, coordinator)
    remaining = max(1, int(timeout - (time.monotonic() - started)))
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=processes,
                                   process_id=process, initialization_timeout=remaining)
    except Exception as error:  # jax raises XlaRuntimeError / RuntimeError by transport
        detail = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise FramepredError(
            f"trainer.coordinator={coordinator}: process {process} of {processes} could not "
            f"join the job within trainer.coordinator_timeout={timeout} s ({detail}); check "
            "that the address and port are free on process 0's host and reachable from "
            "every other, and that every process gives the same trainer.num_processes"
        ) from None


def _wait_for_coordinator(host: str, port: int, timeout: float, coordinator: str) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(2.0, timeout)):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise FramepredError(
                    f"trainer.coordinator={coordinator} cannot be reached from this process "
                    f"within trainer.coordinator_timeout={int(timeout)} s "
                    f"({error.strerror or error}); start process 0 there, or check the "
                    "address, the port and the firewall") from None
            time.sleep(0.25)


def data_parallel(per_device_batch: int, processes: int) -> int:
    """Sets `keras.distribution.DataParallel` over every device of every process;
    returns the device count."""
    import jax

    devices = keras.distribution.list_devices()
    local = jax.local_device_count()
    global_batch = int(per_device_batch) * len(devices)
    if global_batch % processes or (global_batch // processes) % local:
        raise FramepredError(
            f"the global batch of {global_batch} (trainer.batch_size={per_device_batch} x "
            f"{len(devices)} devices) does not divide evenly over {processes} process(es) "
            f"with {local} local device(s) each; give every process the same number of "
            "devices")
    # Each process already reads its own slice of every global batch
    # (data.batches.WindowBatches), so Keras must not shard it again.
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    keras.distribution.set_distribution(distribution)
    return len(devices)


def _gather_digests(digest: bytes) -> list[str]:
    """Every process's `digest` (its first 8 bytes), process 0's first: a collective
    step, so every process calls it at the same point."""
    from jax.experimental import multihost_utils

    mine = np.frombuffer(digest[:8], dtype=np.uint32)  # 32-bit: JAX's default integers
    every = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, 2)
    return [f"{int(high):08x}{int(low):08x}" for high, low in every.astype(np.uint32)]


def fingerprints(variables) -> list[str]:
    """A digest of each process's copy of `variables`, from every process of the job."""
    import hashlib

    import jax

    digest = hashlib.sha256()
    for variable in variables:
        value = variable.value
        local = value.addressable_data(0) if isinstance(value, jax.Array) else value
        digest.update(np.ascontiguousarray(np.asarray(local)).tobytes())
    return _gather_digests(digest.digest())


def check_same_folder(folder) -> None:
    """Every process of a job must write to, and resume from, the same run folder."""
    import hashlib

    resolved = str(os.path.realpath(folder))
    digests = _gather_digests(hashlib.sha256(resolved.encode()).digest())
    if len(set(digests)) != 1:
        raise FramepredError(
            f"the processes of this job were given different run folders (this one: "
            f"{resolved}); give every process the same hydra.run.dir=PATH on a file system "
            "they all share")


@contextlib.contextmanager
def undistributed():
    """Without the JAX job's distribution: models loaded and run inside live on this
    process's default device alone (process 0's final scoring, its forecast images),
    with no collective step that the other processes would have to join."""
    if keras.backend.backend() != "jax":
        yield
        return
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


# --- one run ------------------------------------------------------------------------


def configure(trainer: Any) -> Setup:
    """Logical devices, processes, seeds, the precision policy and the distribution."""
    backend = keras.backend.backend()
    distribution = str(trainer.distribution)
    precision = str(trainer.precision)
    if backend != "jax":
        if trainer.virtual_cpu_devices:
            split_cpu(int(trainer.virtual_cpu_devices))
        keras.utils.set_random_seed(int(trainer.seed))
        keras.mixed_precision.set_global_policy(precision)
        strategy = build_strategy(distribution)
        return Setup(jit_compile=resolve_jit(trainer.jit_compile), precision=precision,
                     device=describe_devices(), strategy=strategy,
                     replicas=int(strategy.num_replicas_in_sync))
    coordinator, process, processes = process_identity(trainer)
    if trainer.virtual_cpu_devices:
        split_jax_cpu(int(trainer.virtual_cpu_devices))
    if processes > 1:
        if distribution != "data_parallel":
            raise FramepredError(
                f"trainer.num_processes={processes} needs trainer.distribution=data_parallel "
                f"(trainer.distribution={distribution})")
        join_processes(coordinator, process, processes, int(trainer.coordinator_timeout))
    keras.distribution.set_distribution(None)  # a sweep's earlier run may have set one
    replicas = 1
    if distribution == "data_parallel":
        replicas = data_parallel(int(trainer.batch_size), processes)
    # The same seed on every process: the same initial weights everywhere. Keras seeds
    # TensorFlow too where it is installed, importing it here even on JAX: its start-up
    # lines are filtered as on the TensorFlow backend.
    with native_start_up():
        keras.utils.set_random_seed(int(trainer.seed))
    keras.mixed_precision.set_global_policy(precision)
    return Setup(jit_compile=resolve_jit(trainer.jit_compile), precision=precision,
                 device=describe_devices(), replicas=replicas, process=process,
                 processes=processes)
