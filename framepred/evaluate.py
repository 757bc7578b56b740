"""Evaluate a checkpoint:  python -m framepred.evaluate checkpoint=PATH [data=...] [key=value ...]

    python -m framepred.evaluate checkpoint=outputs/framepred/<run>/checkpoints/best.keras
    python -m framepred.evaluate checkpoint=... evaluate.split=test
    python -m framepred.evaluate checkpoint=... data.val_sequences=1000 evaluate.batch_size=32
    python -m framepred.evaluate checkpoint=... data=npy data.path=mnist_test_seq.npy

Composes configs/evaluate.yaml; the data config is the run's own (<run>/config.yaml
beside checkpoints/) with the keys given here replaced. Then: load -> check the
data fits the checkpoint -> per-step forecast metrics for the model and the
baselines (copy_last, background, blank; whether the model beats the best) ->
the table on stdout, metrics.json, metrics.csv and TensorBoard scalars
(tensorboard/forecast/) in the output folder (hydra.run.dir).
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
from framepred.errors import exit_on_user_error, install_cli_error_handler

log = logging.getLogger("framepred.evaluate")
# Hydra's errors as one `framepred: error:` line; a misspelled key names the closest.
install_cli_error_handler(unknown_key=partial(config.unknown_key, config.EvaluateSchema))

def evaluate(cfg: DictConfig, out_dir: str | Path | None = None) -> dict:
    """Evaluates `cfg.checkpoint` on `cfg.evaluate.split`; returns the metrics.json payload."""
    from framepred import data, nowcasts, skill, verification
    from framepred.run import trained
    from framepred.run.folder import RunPaths

    config.validate_evaluate(cfg)
    split, batch_size, steps = cfg.evaluate.split, int(cfg.evaluate.batch_size), cfg.evaluate.steps
    model = trained.load_checkpoint(cfg.checkpoint)
    data_cfg = trained.data_config(cfg.checkpoint, cfg.data)
    normalization = trained.normalization(cfg.checkpoint, int(data_cfg.channels))
    nowcasts.check_baselines(cfg.evaluate.baselines, data_cfg.frame_size)  # before any work
    trained.check_frames(model, data_cfg.frame_size, data_cfg.channels,
                         data_cfg.context_frames, where=f"the {split} data (data=...)")
    skill.check_fss_scales_fit(cfg.evaluate.fss_scales, data_cfg.frame_size)
    if out_dir is None:
        out_dir = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    sequences, count = data.count_windows(data_cfg, split)
    # What the table scores, said before it.
    log.info("checkpoint:  %s", Path(str(cfg.checkpoint)).expanduser().resolve())
    scored = count if steps is None else min(count, int(steps) * batch_size)
    log.info("data:        %s split (data=%s): %d sequence(s), %d window(s) of %d context + "
             "%d future frames%s", split, data_cfg.source, sequences, count,
             int(data_cfg.context_frames), int(data_cfg.future_frames),
             f"; scoring the first {scored} (evaluate.steps={steps})" if steps else "")
    windows = data.window_batches(data_cfg, split, batch_size, normalization=normalization)
    results = verification.evaluate_forecast(
        model, windows.numpy(), int(data_cfg.context_frames),
        int(data_cfg.future_frames), max_batches=steps, normalization=normalization,
        thresholds=list(cfg.evaluate.thresholds), fss_scales=list(cfg.evaluate.fss_scales),
        baselines=list(cfg.evaluate.baselines),
    )
    written = RunPaths(out_dir)  # a run folder's metrics files and TensorBoard folder
    payload = verification.write_scores(written, results, {
        "split": split,
        "checkpoint": str(Path(str(cfg.checkpoint)).expanduser().resolve()),
        "data": OmegaConf.to_container(data_cfg, resolve=True, enum_to_str=True),
    }, units=normalization.units or data.units(data_cfg))  # an older run's file names none
    log.info("metrics:     %s, %s", written.metrics, written.metrics_csv)
    log.info("tensorboard: tensorboard --logdir %s", shlex.quote(str(written.tensorboard)))
    return payload


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        evaluate(cfg)


if __name__ == "__main__":
    main()
