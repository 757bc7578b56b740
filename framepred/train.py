"""Train a forecaster:  python -m framepred.train [group=option ...] [key=value ...]

    python -m framepred.train loss=ssim
    python -m framepred.train loss=blend loss.alpha=0.7 trainer.epochs=20
    python -m framepred.train -m loss=ssim,mse,blend
    python -m framepred.train debug=fast
    python -m framepred.train hydra.run.dir=outputs/ssim50   (rerun after a kill: resumes)

Composes the config (configs/train.yaml), then: validate -> devices -> data ->
model -> fit -> score the forecast against the baselines (metrics.json, metrics.csv,
TensorBoard, the tables), as `train` reads top to bottom.
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
from framepred.errors import exit_on_user_error, install_cli_error_handler
from framepred.run.folder import RunPaths, atomic_write
from framepred.run.resume import graceful_stop, mark_complete, prepare

log = logging.getLogger("framepred.train")
# Hydra's errors as one `framepred: error:` line; a misspelled key names the closest.
install_cli_error_handler(unknown_key=partial(config.unknown_key, config.TrainSchema))


def train(cfg: DictConfig, run_dir: str | Path | None = None) -> dict:
    """Runs one training job; returns the metrics.json payload."""
    from framepred import data

    config.validate(cfg)
    if run_dir is None:
        run_dir = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    trainer, data_cfg = cfg.trainer, cfg.data
    setup = _join_devices(trainer, run_dir)  # before any write
    run = RunPaths(Path(run_dir))
    if setup.chief:  # several processes share one run folder; only process 0 writes to it
        run.create()
    start = prepare(cfg, run, writes=setup.chief)  # resume, continue, or already complete
    if start.complete:
        return start.payload

    global_batch = setup.global_batch(trainer.batch_size)
    _log_devices(setup, trainer, global_batch)
    windows = _log_data_summary(data, data_cfg, global_batch, trainer,
                                drop_remainder=setup.sharded)
    if setup.chief:  # after the checks that may refuse this start: the earlier config stays
        OmegaConf.save(cfg, run.config)
        _record_overrides(run)
    normalization = _fit_normalization(data_cfg, run, writes=setup.chief)
    batches = data.training_batches(
        data_cfg, global_batch, form=cfg.model.form, seed=int(trainer.seed),
        steps_per_epoch=trainer.steps_per_epoch, windows=windows,
        normalization=normalization, shard=setup.shard, drop_remainder=setup.sharded)
    model, start_loss = _build_model(cfg, setup, batches, run)
    _fit(model, cfg, setup, batches, run, normalization, global_batch, start_loss)
    if not setup.chief:
        log.info("process %d: training done; process 0 evaluates and writes", setup.process)
        return {}
    payload = _score(model, cfg, run, normalization, global_batch)
    _log_outputs(run)
    return payload


def _join_devices(trainer, run_dir):
    """`devices.configure`: seeds, precision, XLA, the distribution; joins a
    multi-process job, whose processes must share one run folder."""
    import keras

    from framepred import devices

    if devices.process_identity(trainer)[1] != 0:
        _leave_log_file_to_process_0()
    keras.backend.clear_session()  # a sweep runs its jobs in one process
    setup = devices.configure(trainer)
    if setup.processes > 1:
        devices.check_same_folder(run_dir)
    return setup


def _log_devices(setup, trainer, global_batch: int) -> None:
    log.info("device: %s | precision: %s | XLA: %s | replicas: %d | global batch %d "
             "(%d per replica x %d replicas)", setup.device, setup.precision,
             setup.jit_compile, setup.replicas, global_batch, int(trainer.batch_size),
             setup.replicas)


def _fit_normalization(data_cfg, run: RunPaths, writes: bool):
    """data.normalize's statistics of the training split, saved in the run folder:
    evaluate and predict scale as training did."""
    from framepred import data

    normalization = data.fit_normalization(data_cfg)  # training split only
    if normalization.active and writes:
        atomic_write(run.normalization, lambda tmp: Path(tmp).write_text(normalization.to_json()))
    return normalization


def _build_model(cfg: DictConfig, setup, batches, run: RunPaths):
    """The compiled model (scheduled sampling around the network where configured),
    its head started from the data, and the untrained start kept as the best so far;
    returns the model and the start's validation loss."""
    from framepred import losses, metrics, models, optimizers
    from framepred.callbacks.checkpoints import keep_start_as_best

    trainer, data_cfg = cfg.trainer, cfg.data
    with setup.scope():
        network = models.build_model(cfg.model, data_cfg)
        model = models.with_sampling(network, trainer, data_cfg)  # shares network's weights
        model.compile(
            optimizer=optimizers.build_optimizer(trainer, batches.steps_per_epoch),
            loss=losses.build_loss(**OmegaConf.to_container(cfg.loss, resolve=True)),
            metrics=metrics.training_metrics(cfg.loss),
            jit_compile=setup.jit_compile,
            steps_per_execution=int(trainer.steps_per_execution),
        )
        # The whole first global batch on every process: the same start everywhere.
        models.init_head(network, float(batches.train.first().mean()))
        # In the scope: the optimizer's slots are built where fit would build them.
        start_loss = keep_start_as_best(model, run, batches.val_pairs,
                                        trainer.validation_steps, writes=setup.chief)
    log.info("model %s: %s parameters, form %s", model.name, f"{model.count_params():,}",
             cfg.model.form)
    return model, start_loss


def _fit(model, cfg: DictConfig, setup, batches, run: RunPaths, normalization,
         global_batch: int, start_loss) -> None:
    """`model.fit` with the run's callbacks, from where a resumed run stopped;
    SIGTERM / Ctrl-C save a resumable state and exit."""
    from framepred.callbacks import build_callbacks
    from framepred.callbacks.checkpoints import resume_epoch

    trainer = cfg.trainer
    if hasattr(batches.train_pairs, "resume_at"):  # the PyDataset pipeline (not tf.data)
        batches.train_pairs.resume_at(resume_epoch(run.backup), batches.steps_per_epoch)
    with graceful_stop():
        model.fit(
            batches.train_pairs,
            validation_data=batches.val_pairs,
            epochs=int(trainer.epochs),
            steps_per_epoch=batches.steps_per_epoch if batches.stream else None,
            validation_steps=trainer.validation_steps,
            callbacks=build_callbacks(cfg, run, batches.windows_per_epoch, normalization,
                                      global_batch=global_batch, writes=setup.chief,
                                      processes=setup.processes, start=start_loss),
            verbose=fit_verbosity(trainer.verbose),
        )


def _score(model, cfg: DictConfig, run: RunPaths, normalization, global_batch: int) -> dict:
    """The best checkpoint and every baseline on the validation split, written and
    printed as evaluate writes them; then the run is marked complete."""
    import keras

    from framepred import data, devices, verification

    data_cfg = cfg.data
    with devices.undistributed():  # scored on this process alone
        best = keras.models.load_model(run.best) if run.best.exists() else model
        validation = data.window_batches(data_cfg, "val", global_batch,
                                         normalization=normalization)
        results = verification.evaluate_forecast(
            best, validation.numpy(),
            data_cfg.context_frames, data_cfg.future_frames,
            max_batches=cfg.trainer.validation_steps, normalization=normalization,
        )
    checkpoint = str(run.best.relative_to(run.root) if run.best.exists() else "final")
    payload = verification.write_scores(run, results, {"split": "val", "checkpoint": checkpoint},
                                        units=normalization.units)
    mark_complete(run, int(cfg.trainer.epochs))  # last: a kill before it means evaluate again
    return payload


def _log_outputs(run: RunPaths) -> None:
    """Where the run's files are, and the commands that use them next."""
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
    short last one (`drop_remainder`, `data.check_split_fills_batch`). Returns the
    training windows of one pass."""
    counts = {split: data.count_windows(data_cfg, split) for split in ("train", "val")}
    for split, (sequences, windows) in counts.items():
        log.info("data: %s split: %d sequence(s), %d window(s) of %d frames", split,
                 sequences, windows, data.window_length(data_cfg))
        if drop_remainder:
            data.check_split_fills_batch(split, windows, global_batch, int(trainer.batch_size))
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
