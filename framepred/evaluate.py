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

import csv
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import framepred  # noqa: F401  (registers Keras objects, quiets TF start-up)
from framepred.config import config_dir, option_value
from framepred.errors import FramepredError, exit_on_user_error, install_cli_error_handler
from framepred.runs import atomic_write, write_json

log = logging.getLogger("framepred.evaluate")
install_cli_error_handler()  # Hydra's errors as one `framepred: error:` line

CSV_NAME = "metrics.csv"
JSON_NAME = "metrics.json"


def write_csv(path: Path, results: dict) -> None:
    """One row per (entry, step): entry (model, then each baseline), step (1 ... H,
    then "mean"), every metric. The verdict (`beats_best_baseline`) is in
    metrics.json only."""
    from framepred.metrics import forecast_entries

    entries = forecast_entries(results)
    metric_names = list(next(iter(entries.values())))

    def write(tmp):
        with open(tmp, "w", newline="") as handle:
            table = csv.writer(handle)
            table.writerow(["entry", "step", *metric_names])
            for entry, values in entries.items():
                steps = len(values[metric_names[0]]["per_step"])
                for step in range(steps):
                    table.writerow([entry, step + 1, *(
                        f"{values[name]['per_step'][step]:.6g}" for name in metric_names)])
                table.writerow([entry, "mean", *(
                    f"{values[name]['mean']:.6g}" for name in metric_names)])

    atomic_write(path, write)


def evaluate(cfg: DictConfig, out_dir: str | Path | None = None) -> dict:
    """Evaluates `cfg.checkpoint` on `cfg.evaluate.split`; returns the metrics.json payload."""
    from framepred import checkpoints, dashboards, data, evaluation, metrics

    split = option_value(cfg.evaluate.split)
    batch_size, steps = int(cfg.evaluate.batch_size), cfg.evaluate.steps
    if batch_size < 1:
        raise FramepredError(f"evaluate.batch_size={batch_size} must be >= 1")
    if steps is not None and steps < 1:
        raise FramepredError(f"evaluate.steps={steps} must be >= 1 or null (the whole split)")
    checkpoints.require_keys(cfg, ("checkpoint",), "checkpoint=<run>/checkpoints/best.keras")
    model = checkpoints.load_checkpoint(cfg.checkpoint)
    data_cfg = checkpoints.data_config(cfg.checkpoint, cfg.data)
    checkpoints.check_frames(model, data_cfg.frame_size, data_cfg.channels,
                             data_cfg.context_frames, where=f"the {split} data (data=...)")
    if out_dir is None:
        out_dir = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    windows = data.windows(data_cfg, split, batch_size)
    results = evaluation.evaluate_forecast(
        model, windows.as_numpy_iterator(), int(data_cfg.context_frames),
        int(data_cfg.future_frames), max_batches=steps,
    )
    payload = {
        **results,
        "split": split,
        "checkpoint": str(Path(str(cfg.checkpoint)).expanduser().resolve()),
        "data": OmegaConf.to_container(data_cfg, resolve=True, enum_to_str=True),
    }
    write_json(out_dir / JSON_NAME, payload)
    write_csv(out_dir / CSV_NAME, results)
    dashboards.log_forecast_metrics(out_dir / "tensorboard", results)
    print(metrics.format_table(results), flush=True)
    log.info("metrics:     %s, %s", out_dir / JSON_NAME, out_dir / CSV_NAME)
    log.info("tensorboard: tensorboard --logdir %s", out_dir / "tensorboard")
    return payload


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        evaluate(cfg)


if __name__ == "__main__":
    main()
