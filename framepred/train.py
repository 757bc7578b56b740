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
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import framepred  # noqa: F401  (registers Keras objects, quiets TF start-up)
from framepred import config, resilience
from framepred.config import config_dir, option_value
from framepred.errors import exit_on_user_error, install_cli_error_handler
from framepred.runs import RunPaths, write_json

log = logging.getLogger("framepred.train")
install_cli_error_handler()  # Hydra's errors as one `framepred: error:` line


def build_loss(loss_cfg):
    from framepred import losses

    return losses.build_loss(
        option_value(loss_cfg.name),
        alpha=float(loss_cfg.alpha),
        structural=option_value(loss_cfg.structural),
        pixel=option_value(loss_cfg.pixel),
        max_val=float(loss_cfg.max_val),
        filter_size=int(loss_cfg.filter_size),
        filter_sigma=float(loss_cfg.filter_sigma),
        power_factors=tuple(loss_cfg.power_factors),
    )


def build_metrics(loss_cfg):
    import keras

    from framepred import metrics

    return [
        metrics.SSIM(max_val=float(loss_cfg.max_val), filter_size=int(loss_cfg.filter_size),
                     filter_sigma=float(loss_cfg.filter_sigma)),
        metrics.PSNR(max_val=float(loss_cfg.max_val)),
        keras.metrics.MeanSquaredError(name="mse"),
        keras.metrics.MeanAbsoluteError(name="mae"),
    ]


def build_optimizer(trainer, steps_per_epoch: int):
    import keras

    from framepred.schedules import OneCycle

    rate, total_steps = float(trainer.learning_rate), int(trainer.epochs) * steps_per_epoch
    schedule = option_value(trainer.schedule)
    if schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, total_steps)
    elif schedule == "onecycle":
        rate = OneCycle(rate, total_steps, warmup_fraction=float(trainer.warmup_fraction))
    options = dict(learning_rate=rate, clipnorm=trainer.clipnorm)
    if option_value(trainer.optimizer) == "adamw":
        return keras.optimizers.AdamW(weight_decay=float(trainer.weight_decay), **options)
    return keras.optimizers.Adam(**options)


def with_sampling(model, trainer, data_cfg):
    """The next_frame `model` unrolled with (reverse) scheduled sampling, per
    `trainer.sampling`; `model` itself for teacher forcing."""
    from framepred import models

    sampling = option_value(trainer.sampling)
    if sampling == "teacher_forcing":
        return model
    return models.build_sampled_next_frame(
        model, sampling, int(data_cfg.context_frames), int(data_cfg.future_frames),
        seed=int(trainer.seed), start_value=float(trainer.sampling_start_value),
        changing_rate=float(trainer.sampling_changing_rate),
        stop_step=int(trainer.sampling_stop_step),
        reverse_steps=[int(s) for s in trainer.reverse_sampling_steps],
        reverse_alpha=float(trainer.reverse_sampling_alpha),
    )


def train(cfg: DictConfig, run_dir: str | Path | None = None) -> dict:
    """Runs one training job; returns the metrics.json payload."""
    import keras

    from framepred import dashboards, data, evaluation, metrics, models
    from framepred.callbacks import build_callbacks, keep_start_as_best
    from framepred.runtime import configure

    config.validate(cfg)
    if run_dir is None:
        run_dir = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    run = RunPaths(Path(run_dir)).create()
    start = resilience.prepare(cfg, run)  # resume, continue, or already complete
    if start.complete:
        return start.payload
    OmegaConf.save(cfg, run.config)

    keras.backend.clear_session()  # a sweep runs its jobs in one process
    runtime = configure(cfg.trainer)
    trainer, data_cfg = cfg.trainer, cfg.data
    form = option_value(cfg.model.form)
    global_batch = runtime.global_batch(trainer.batch_size)
    log.info("device: %s | precision: %s | XLA: %s | replicas: %d | global batch %d "
             "(%d per replica x %d replicas)", runtime.device, runtime.precision,
             runtime.jit_compile, runtime.replicas, global_batch, int(trainer.batch_size),
             runtime.replicas)

    repeat = trainer.steps_per_epoch is not None
    train_windows = data.windows(data_cfg, "train", global_batch, shuffle=True,
                                 seed=int(trainer.seed), repeat=repeat)
    val_windows = data.windows(data_cfg, "val", global_batch)
    train_pairs = data.training_pairs(train_windows, form, data_cfg.context_frames)
    val_pairs = data.training_pairs(val_windows, form, data_cfg.context_frames)
    steps_per_epoch = trainer.steps_per_epoch or max(1, int(train_pairs.cardinality()))

    with runtime.strategy.scope():
        network = models.build_model(cfg.model, data_cfg)
        model = with_sampling(network, trainer, data_cfg)  # shares the network's weights
        model.compile(
            optimizer=build_optimizer(trainer, steps_per_epoch),
            loss=build_loss(cfg.loss),
            metrics=build_metrics(cfg.loss),
            jit_compile=runtime.jit_compile,
            steps_per_execution=int(trainer.steps_per_execution),
        )
        level = float(next(iter(train_windows.take(1))).numpy().mean())
        models.init_head(network, level)
        # In the scope: the optimizer's slots are built where fit would build them.
        keep_start_as_best(model, run, val_pairs, trainer.validation_steps)
    log.info("model %s: %s parameters, form %s", model.name, f"{model.count_params():,}", form)
    with resilience.graceful_stop():  # SIGTERM / Ctrl-C: save a resumable state, exit
        model.fit(
            train_pairs,
            validation_data=val_pairs,
            epochs=int(trainer.epochs),
            steps_per_epoch=trainer.steps_per_epoch,
            validation_steps=trainer.validation_steps,
            callbacks=build_callbacks(cfg, run),
            verbose=trainer.verbose if trainer.verbose == "auto" else int(trainer.verbose),
        )

    best = keras.models.load_model(run.best) if run.best.exists() else model
    results = evaluation.evaluate_forecast(
        best, val_windows.as_numpy_iterator(), data_cfg.context_frames, data_cfg.future_frames,
        max_batches=trainer.validation_steps,
    )
    payload = {
        **results,
        "split": "val",
        "checkpoint": str(run.best.relative_to(run.root) if run.best.exists() else "final"),
    }
    write_json(run.metrics, payload)
    resilience.mark_complete(run, int(trainer.epochs))
    dashboards.log_forecast_metrics(run.tensorboard, results)
    print(metrics.format_table(results), flush=True)
    summary = [
        f"outputs:     {run.root}",
        f"checkpoints: {run.best} (lowest val_loss), {run.last}",
        f"metrics:     {run.metrics}",
        f"tensorboard: tensorboard --logdir {run.tensorboard.parent.parent}",
    ]
    for line in summary:
        log.info(line)
    return payload


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        train(cfg)


if __name__ == "__main__":
    main()
