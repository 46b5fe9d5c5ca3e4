"""Refusals on the public OLMo ladder (shared data; skipped when absent): the five sizes 190M-3B as the rungs.

winogrande at 0.5xC scores 0.50-0.53 on every rung (two choices) while the 13B target scores 0.79: no trend to
extrapolate, so no forecast. boolq's task loss at 1xC gives gpt4-loss no bend to place its floor: log_c at its bound.
"""

import csv

import pytest

from augury.scaling.olmo import PARAMS
from augury.scaling.result import fit_law

SIZES = ("190M", "370M", "760M", "1B", "3B")


def _final_rows(olmo_dir, mult: float, column: str, key: str) -> list[dict]:
    rows = []
    for size in SIZES:
        path = olmo_dir / "olmo-ladder" / "ladder-runs" / f"{size}-{mult:g}xC.csv"
        with open(path, newline="") as f:
            last = list(csv.DictReader(f))[-1]
        params = PARAMS[size]
        rows.append({"name": size, "flops": 6.0 * params * mult * 20 * params, key: float(last[column])})
    return rows


def test_a_two_choice_task_at_chance_on_every_rung_is_not_forecastable(olmo_dir):
    rows = _final_rows(olmo_dir, 0.5, "eval/downstream/winogrande_val_rc_5shot_len_norm", "accuracy")
    assert all(0.49 <= r["accuracy"] <= 0.54 for r in rows)
    res = fit_law("sigmoid", rows, y="accuracy", bootstrap=200, chance=0.5)
    status, reason = res.forecastability()
    assert status == "not-forecastable" and reason
    target_flops = 6.0 * PARAMS["13B"] * 5e12
    rec = res.forecast({"flops": target_flops}, actual=[0.7932])[0]
    assert rec["status"] == "not-forecastable" and rec["value"] is None and rec["interval"] is None


def test_a_task_loss_whose_floor_sits_at_its_bound_is_degenerate(olmo_dir):
    rows = _final_rows(olmo_dir, 1.0, "eval/downstream_bpb/boolq_val_rc_5shot_bpb", "loss")
    res = fit_law("gpt4-loss", rows, bootstrap=50)
    status, reason = res.forecastability()
    assert status == "degenerate" and "log_c" in reason
    rec = res.forecast({"flops": 6.0 * PARAMS["13B"] * 5e12})[0]
    assert rec["status"] == "degenerate" and rec["value"] > 0 and rec["interval"][0] > 0
    assert rec["alternatives"] and all(v > 0 for v in rec["alternatives"].values())


@pytest.mark.parametrize("mult", [0.5, 1.0])
def test_olmo_accuracy_intervals_stay_in_range(olmo_dir, mult):
    rows = _final_rows(olmo_dir, mult, "eval/downstream/piqa_val_rc_5shot_len_norm", "accuracy")
    res = fit_law("sigmoid", rows, y="accuracy", bootstrap=200, chance=0.5)
    for rec in res.forecast([{"flops": 6.0 * PARAMS["7B"] * 4e12}, {"flops": 6.0 * PARAMS["13B"] * 5e12}]):
        if rec["interval"] is not None:
            assert 0.5 <= rec["interval"][0] <= rec["interval"][1] <= 1.0
