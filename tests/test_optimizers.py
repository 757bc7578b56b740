"""The one-cycle learning-rate schedule, against PyTorch's OneCycleLR formulas."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from framepred.optimizers import OneCycle


def _pytorch_one_cycle(step, max_rate, total, pct_start=0.3, div=25.0, final_div=1e4):
    """torch.optim.lr_scheduler.OneCycleLR(anneal_strategy="cos"), written out by hand."""
    initial = max_rate / div
    phases = [(pct_start * total - 1, initial, max_rate),
              (total - 1, max_rate, initial / final_div)]
    start = 0.0
    for i, (end, rate_from, rate_to) in enumerate(phases):
        if step <= end or i == len(phases) - 1:
            pct = (step - start) / (end - start)
            return rate_to + (rate_from - rate_to) / 2.0 * (math.cos(math.pi * pct) + 1)
        start = end


@pytest.mark.parametrize("total", [100, 625])
def test_one_cycle_matches_pytorch(total):
    schedule = OneCycle(2e-3, total)
    for step in [0, 1, total // 7, int(0.3 * total) - 1, int(0.3 * total), total // 2, total - 1]:
        assert float(schedule(step)) == pytest.approx(
            _pytorch_one_cycle(step, 2e-3, total), rel=1e-4, abs=1e-10), step


def test_one_cycle_serializes_inside_an_optimizer():
    optimizer = keras.optimizers.Adam(learning_rate=OneCycle(1e-3, 50, warmup_fraction=0.2))
    restored = keras.optimizers.Adam.from_config(optimizer.get_config())
    rates = [float(restored.learning_rate) for _ in range(1)]
    assert isinstance(restored._learning_rate, OneCycle)
    assert rates[0] == pytest.approx(1e-3 / 25.0, rel=1e-5)  # iteration 0


def test_train_builds_one_cycle(compose_train):
    from framepred.optimizers import build_optimizer

    cfg = compose_train(["trainer.schedule=onecycle", "trainer.epochs=2"])
    optimizer = build_optimizer(cfg.trainer, steps_per_epoch=10)
    schedule = optimizer._learning_rate
    assert isinstance(schedule, OneCycle) and schedule.total_steps == 20
    peak = max(float(schedule(step)) for step in range(20))
    assert np.isclose(peak, cfg.trainer.learning_rate, rtol=0.05)
