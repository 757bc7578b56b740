"""Train a forecaster:  python -m framepred.train [group=option ...] [key=value ...]

    python -m framepred.train loss=ssim
    python -m framepred.train loss=blend loss.alpha=0.7 trainer.epochs=20
    python -m framepred.train -m loss=ssim,mse,blend
    python -m framepred.train debug=fast
    python -m framepred.train hydra.run.dir=outputs/ssim50   (rerun after a kill: resumes)

Composes the config (configs/train.yaml), then: validate -> data -> model ->
fit -> evaluate the forecast against the copy-last-frame baseline -> metrics.json.
"""

from __future__ import annotations

import logging
import shlex
from functools import partial
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import framepred  # noqa: F401  (registers Keras objects, quiets TF start-up)
from framepred import config
from framepred.config import config_dir
from framepred.console import fit_verbosity, to_log_file
from framepred.errors import FramepredError, exit_on_user_error, install_cli_error_handler
from framepred.run.folder import RunPaths, atomic_write, write_json
from framepred.run.resume import graceful_stop, mark_complete, prepare

log = logging.getLogger("framepred.train")
# Hydra's errors as one `framepred: error:` line; a misspelled key names the closest.
install_cli_error_handler(unknown_key=partial(config.unknown_key, config.TrainSchema))


def train(cfg: DictConfig, run_dir: str | Path | None = None) -> dict:
    """Runs one training job; returns the metrics.json payload."""
    import keras

    from framepred import (
        data,
        devices,
        losses,
        metrics,
        models,
        optimizers,
        scoreboard,
        verification,
    )
    from framepred.callbacks import build_callbacks
    from framepred.callbacks.checkpoints import keep_start_as_best, resume_epoch
    from framepred.callbacks.dashboards import log_forecast_metrics

    config.validate(cfg)
    if run_dir is None:
        run_dir = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    trainer, data_cfg = cfg.trainer, cfg.data
    if devices.process_identity(trainer)[1] != 0:
        _leave_log_file_to_process_0()
    keras.backend.clear_session()  # a sweep runs its jobs in one process
    setup = devices.configure(trainer)  # joins a multi-process job: before any write
    # Several processes share one run folder; only process 0 writes to it.
    chief = setup.chief
    if setup.processes > 1:
        devices.check_same_folder(run_dir)
    run = RunPaths(Path(run_dir))
    if chief:
        run.create()
    start = prepare(cfg, run, writes=chief)  # resume, continue, or already complete
    if start.complete:
        return start.payload

    form = cfg.model.form
    global_batch = setup.global_batch(trainer.batch_size)
    log.info("device: %s | precision: %s | XLA: %s | replicas: %d | global batch %d "
             "(%d per replica x %d replicas)", setup.device, setup.precision,
             setup.jit_compile, setup.replicas, global_batch, int(trainer.batch_size),
             setup.replicas)

    # Batches split over devices by keras.distribution must divide evenly: a short last
    # batch is left out there (tf.distribute splits it unevenly instead).
    sharded = setup.strategy is None and setup.replicas > 1
    windows_per_epoch = _log_data_summary(data, data_cfg, global_batch, trainer,
                                          drop_remainder=sharded)
    if chief:  # after the checks that may refuse this start: the earlier config stays
        OmegaConf.save(cfg, run.config)
        _record_overrides(run)
    normalization = data.fit_normalization(data_cfg)  # training split only
    if normalization.active and chief:  # evaluate and predict scale as training did
        atomic_write(run.normalization, lambda tmp: Path(tmp).write_text(normalization.to_json()))
    repeat = trainer.steps_per_epoch is not None
    # The PyDataset pipeline is one endless stream cut into epochs by steps: which batch a
    # step reads then depends on the step alone, although Keras reads ahead across the
    # epoch's end, so a resumed run reads what an uninterrupted one would.
    stream = repeat or keras.backend.backend() != "tensorflow"
    if sharded and not repeat:
        windows_per_epoch -= windows_per_epoch % global_batch
    batches = {"shard": setup.shard, "drop_remainder": sharded, "normalization": normalization}
    train_windows = data.window_batches(data_cfg, "train", global_batch, shuffle=True,
                                 seed=int(trainer.seed), repeat=stream, **batches)
    val_windows = data.window_batches(data_cfg, "val", global_batch, **batches)
    train_pairs = train_windows.pairs(form, data_cfg.context_frames)
    val_pairs = val_windows.pairs(form, data_cfg.context_frames)
    steps_per_epoch = trainer.steps_per_epoch or max(1, train_windows.steps)

    with setup.scope():
        network = models.build_model(cfg.model, data_cfg)
        model = models.with_sampling(network, trainer, data_cfg)  # shares network's weights
        model.compile(
            optimizer=optimizers.build_optimizer(trainer, steps_per_epoch),
            loss=losses.build_loss(**OmegaConf.to_container(cfg.loss, resolve=True)),
            metrics=metrics.training_metrics(cfg.loss),
            jit_compile=setup.jit_compile,
            steps_per_execution=int(trainer.steps_per_execution),
        )
        # The whole first global batch on every process: the same start everywhere.
        models.init_head(network, float(train_windows.first().mean()))
        # In the scope: the optimizer's slots are built where fit would build them.
        start_loss = keep_start_as_best(model, run, val_pairs, trainer.validation_steps,
                                        writes=chief)
    log.info("model %s: %s parameters, form %s", model.name, f"{model.count_params():,}", form)
    if hasattr(train_pairs, "resume_at"):  # the PyDataset pipeline (not tf.data)
        train_pairs.resume_at(resume_epoch(run.backup), steps_per_epoch)
    with graceful_stop():  # SIGTERM / Ctrl-C: save a resumable state, exit
        model.fit(
            train_pairs,
            validation_data=val_pairs,
            epochs=int(trainer.epochs),
            steps_per_epoch=steps_per_epoch if stream else None,
            validation_steps=trainer.validation_steps,
            callbacks=build_callbacks(cfg, run, None if repeat else windows_per_epoch,
                                      normalization, global_batch=global_batch, writes=chief,
                                      processes=setup.processes, start=start_loss),
            verbose=fit_verbosity(trainer.verbose),
        )
    if not chief:
        log.info("process %d: training done; process 0 evaluates and writes", setup.process)
        return {}
    with devices.undistributed():  # scored on this process alone
        best = keras.models.load_model(run.best) if run.best.exists() else model
        validation = data.window_batches(data_cfg, "val", global_batch,
                                         normalization=normalization)
        results = verification.evaluate_forecast(
            best, validation.numpy(),
            data_cfg.context_frames, data_cfg.future_frames,
            max_batches=trainer.validation_steps, normalization=normalization,
        )
    payload = {
        **results,
        "split": "val",
        "checkpoint": str(run.best.relative_to(run.root) if run.best.exists() else "final"),
    }
    write_json(run.metrics, payload)
    verification.write_csv(run.metrics_csv, results)
    log_forecast_metrics(run.tensorboard, results)
    mark_complete(run, int(trainer.epochs))  # last: a kill before it means evaluate again
    table = scoreboard.format_table(results, units=normalization.units)
    print(table, flush=True)
    to_log_file(table)
    summary = [
        f"outputs:     {run.root}",
        f"checkpoints: {run.best} (lowest val_loss), {run.last}",
        f"metrics:     {run.metrics}, {run.metrics_csv}",
        f"tensorboard: tensorboard --logdir {shlex.quote(str(run.tensorboard.parent.parent))}",
    ]
    for line in summary:
        log.info(line)
    for line in next_commands(run):
        print(line, flush=True)
        to_log_file(line)
    return payload


def next_commands(run: RunPaths) -> list[str]:
    """The evaluate and predict commands of a finished run, ready to paste: each
    argument quoted for Hydra and the shell (`config.pasteable`). Predict forecasts the
    first validation sequence of the run's own data (`input=split:val`, which a built-in
    source needs, having no file), from its start, so the truth is beside it."""
    best = run.best if run.best.exists() else run.last
    checkpoint = config.pasteable("checkpoint", best.resolve())
    return ["next:",
            f"  python -m framepred.evaluate {checkpoint}",
            f"  python -m framepred.predict {checkpoint} input=split:val predict.sequence=0 "
            f"predict.start=0 {config.pasteable('output', (run.root / 'forecast').resolve())}",
            "  (or input=<your GIF, video, folder of frames or .npy file>)"]


def _record_overrides(run: RunPaths) -> None:
    """This start's command-line overrides, in overrides.txt (one a line) and the log:
    a sweep's job folder is named by its number alone."""
    if not hydra.core.hydra_config.HydraConfig.initialized():
        return  # called as a function, not from the command line
    overrides = list(hydra.core.hydra_config.HydraConfig.get().overrides.task)
    atomic_write(run.overrides,
                 lambda tmp: Path(tmp).write_text("".join(f"{o}\n" for o in overrides)))
    log.info("overrides: %s", " ".join(shlex.quote(o) for o in overrides) or "(none)")


def _leave_log_file_to_process_0() -> None:
    """Hydra gives every process a handler on the run's train.log; in a multi-process
    job only process 0 keeps it (the others log to their console)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()


def _log_data_summary(data, data_cfg, global_batch: int, trainer,
                      drop_remainder: bool) -> int:
    """Logs sequences and windows per split and the steps per epoch; warns where a
    split holds less than one batch, and refuses the start where batches leave out a
    short last one (`drop_remainder`): the split would give no batch at all, and a
    pass over none waits forever. Returns the training windows of one pass."""
    counts = {split: data.count_windows(data_cfg, split) for split in ("train", "val")}
    for split, (sequences, windows) in counts.items():
        log.info("data: %s split: %d sequence(s), %d window(s) of %d frames", split,
                 sequences, windows, data.window_length(data_cfg))
        if windows < global_batch and drop_remainder:
            per_device = int(trainer.batch_size)
            raise FramepredError(
                f"the {split} split has {windows} window(s), fewer than one global batch of "
                f"{global_batch} (trainer.batch_size={per_device} x "
                f"{global_batch // per_device} devices); batches split over devices leave "
                f"out a short last batch, so it would give none: give the {split} split at "
                f"least {global_batch} windows or lower trainer.batch_size")
        if windows < global_batch:
            log.warning("the %s split has %d window(s), fewer than one global batch of %d: "
                        "each step sees only those; give more data or a smaller "
                        "trainer.batch_size", split, windows, global_batch)
    windows = counts["train"][1]
    steps = trainer.steps_per_epoch or -(-windows // global_batch)
    log.info("data: %d step(s) per epoch%s", steps,
             " (trainer.steps_per_epoch; the windows repeat)" if trainer.steps_per_epoch
             else f" of up to {global_batch} windows")
    return windows


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        train(cfg)


if __name__ == "__main__":
    main()
