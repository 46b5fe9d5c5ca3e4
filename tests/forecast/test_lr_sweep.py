"""experiments/recipe/lr_sweep.py's best learning-rate multiple (docs/experiments.md's lr findings)."""

from __future__ import annotations

import math

import pytest

from experiments.recipe.lr_sweep import best_multiple


def _losses(mults, best=1.6):
    return [(math.log2(m) - math.log2(best)) ** 2 + 3.0 for m in mults]


def test_the_parabola_finds_an_interior_optimum():
    mults = [0.5, 1.0, 2.0, 4.0]
    best, inside = best_multiple(mults, _losses(mults))
    assert inside and best == pytest.approx(1.6)
    assert best_multiple(mults, _losses(mults, best=8.0)) == (4.0, False)


def test_multiples_given_out_of_order_are_neighbours_by_value():
    """`--mults 1 0.5 4 2` took the entries beside the lowest in the order typed: the lowest (2) came last, so the
    optimum read as 2, 'at the edge' of the sweep, for a true 1.6 inside it; neighbours are now by learning rate."""
    mults = [1.0, 0.5, 4.0, 2.0]
    best, inside = best_multiple(mults, _losses(mults))
    assert inside and best == pytest.approx(1.6)
    assert best_multiple(mults, _losses(mults, best=8.0)) == (4.0, False)


def _finished(run_dir, tcfg):
    """A complete run's manifest as the trainer writes it (its config is the TrainConfig it trained)."""
    import json

    from augury.io import to_jsonable

    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({
        "status": "complete", "config": to_jsonable(tcfg), "summary": {"final_val_loss": 3.5, "train_seconds": 1},
        "tokens_per_step": tcfg.batch_size * tcfg.seq_len * tcfg.grad_accum}))


def test_a_finished_run_at_another_learning_rate_is_not_reused(tmp_path):
    """The sweeps reuse finished runs in --out; a run of the same shape and length trained at another learning rate
    (rerun with another --lr-base, or --set recipe.lr_batch_exponent, into the same --out) was reused, its loss
    printed beside the new learning rate. It is now one error naming the run and both rates."""
    import dataclasses

    from augury.forecast.config import load_forecast_config
    from augury.forecast.ladder import plan_runs, train_config
    from augury.forecast.runner import finished_summary
    from benchmarks.preset_runs import reusable_summary

    cfg = load_forecast_config("cpu-demo", overrides={"progress": False})
    rung = plan_runs(cfg, 1024)[0]
    tcfg = train_config(cfg, rung, str(tmp_path / "run"), 1024)
    assert reusable_summary(tmp_path / "run", tcfg) is None  # nothing there yet
    _finished(tmp_path / "run", tcfg)
    assert reusable_summary(tmp_path / "run", tcfg)["final_val_loss"] == 3.5
    other = dataclasses.replace(tcfg, optim=dataclasses.replace(tcfg.optim, lr=2 * tcfg.optim.lr))
    assert finished_summary(tmp_path / "run", other) is not None  # shape and length alone: what the sweeps used
    with pytest.raises(SystemExit, match="learning rate"):
        reusable_summary(tmp_path / "run", other)
