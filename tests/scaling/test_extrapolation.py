"""Predictions far outside the fitted data: a warning beyond 2 decades, printed beside the number, and a refusal
beyond 4 (a table in PF-days queried in FLOPs lands 20 decades out)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from augury.cli import main


def _table(path, unit=1.0):
    flops = np.geomspace(1e18, 1e20, 6)
    loss = 30 * flops ** -0.08 + 1.7
    path.write_text("name,flops,loss\n" + "".join(f"r{i},{c / unit:.17g},{v:.17g}\n" for i, (c, v) in
                                                  enumerate(zip(flops, loss))))
    return path


def _main(args):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning leaking to stderr fails the test
        return main(args)


def test_fit_warns_beside_the_number_and_refuses_far_points(tmp_path, capsys):
    table = _table(tmp_path / "t.csv")
    code = _main(["fit", str(table), "--law", "gpt4-loss", "--bootstrap", "50", "--out", str(tmp_path / "o"),
                  "--predict", "flops=1e21;flops=1e23;flops=1e25;flops=1e300;flops=1e13"])
    out = capsys.readouterr().out
    assert code == 0
    lines = {ln.split(":")[0].strip(): ln for ln in out.splitlines() if ln.strip().startswith("predict")}
    assert "warning" not in lines["predict flops=1e+21"]
    assert "warning: extrapolates 3.0 decades" in lines["predict flops=1e+23"]
    for far in ("predict flops=1e+25", "predict flops=1e+300", "predict flops=1e+13"):  # 13e18 below: 5 decades
        assert "NOT FORECASTABLE" in lines[far] and "decades outside the fitted data" in lines[far], lines[far]
    preds = json.loads((tmp_path / "o" / "fit.json").read_text())["predictions"]
    assert [p["status"] for p in preds] == ["ok", "ok", "not-forecastable", "not-forecastable", "not-forecastable"]
    assert "warning" in preds[1] and preds[2]["value"] is None and preds[3]["interval"] is None


def test_a_table_in_pf_days_queried_in_flops_is_refused(tmp_path, capsys):
    table = _table(tmp_path / "t.csv", unit=8.64e19)  # compute in PF-days
    assert _main(["fit", str(table), "--law", "power-loss", "--bootstrap", "50", "--predict", "flops=1e24",
                  "--actual", "2.0", "--out", str(tmp_path / "o")]) == 0
    assert "NOT FORECASTABLE: 23.9 decades outside" in capsys.readouterr().out
    pred = json.loads((tmp_path / "o" / "fit.json").read_text())["predictions"][0]
    assert pred["value"] is None and pred["rel_error"] is None


def test_backtest_table_shows_the_warning_and_refuses_far_rows(tmp_path, capsys):
    table = _table(tmp_path / "t.csv")
    with table.open("a") as fh:
        fh.write(f"near,1e23,{30 * 1e23 ** -0.08 + 1.7!r}\nfar,1e26,{30 * 1e26 ** -0.08 + 1.7!r}\n")
    assert _main(["backtest", str(table), "--law", "gpt4-loss", "--holdout", "flops>1e21", "--bootstrap", "50",
                  "--out", str(tmp_path / "o")]) == 0
    rows = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.split()}
    assert "warning: extrapolates 3.0 decades" in rows["near"]
    assert "NOT FORECASTABLE: 6.0 decades outside" in rows["far"]
    report = json.loads((tmp_path / "o" / "backtest.json").read_text())
    assert report["n_not_forecastable"] == 1


@pytest.mark.parametrize("decades, status", [(3.0, "ok"), (6.0, "not-forecastable")])
def test_two_step_forecasts_carry_the_same_rules(decades, status):
    from augury.scaling import fit_two_step

    from .conftest import chinchilla_loss

    rng = np.random.default_rng(0)
    rows = []
    for n in (2e7, 5e7, 1e8, 3e8):
        for mult in (10, 20, 60):
            bpb = 0.35 * chinchilla_loss(n, n * mult) * np.exp(rng.normal(0, 0.002))
            rows.append({"name": f"{n:g}-{mult}", "params": n, "tokens": n * mult, "bpb": bpb,
                         "acc": 0.25 + 0.75 / (1 + np.exp(6.0 * (bpb - 1.0))) + rng.normal(0, 0.003)})
    res = fit_two_step(rows, rows, loss="bpb", accuracy="acc", group="name", bootstrap=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = res.forecast({"params": 3e8, "tokens": 3e8 * 60 * 10 ** decades})[0]
    assert rec["extrapolation_decades"] == pytest.approx(decades) and rec["status"] == status
    assert ("warning" in rec) == (status == "ok")


def _accuracy_table(path):
    """Accuracy rising with compute through a task loss (bits per byte) that falls with it."""
    flops = np.geomspace(1e18, 1e21, 8)
    bpb = 1.6 * (flops / 1e18) ** -0.05
    acc = 0.25 + 0.75 / (1 + np.exp(8 * (bpb - 1.35))) + np.random.default_rng(0).normal(0, 0.005, 8)
    path.write_text("name,flops,task_bpb,accuracy\n" + "".join(f"r{i},{c:.6g},{b:.6g},{a:.6g}\n" for i, (c, b, a) in
                                                              enumerate(zip(flops, bpb, acc))))
    return path


def test_a_sigmoid_of_compute_carries_the_same_rules(tmp_path, capsys):
    table = _accuracy_table(tmp_path / "t.csv")
    assert _main(["fit", str(table), "--law", "sigmoid", "--y", "accuracy", "--chance", "0.25", "--bootstrap", "50",
                  "--predict", "flops=1e24;flops=1e27", "--out", str(tmp_path / "o")]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("predict")]
    assert "warning: extrapolates 3.0 decades outside the fitted data" in lines[0]
    assert "NOT FORECASTABLE: 6.0 decades outside the fitted data, beyond the 4" in lines[1]


@pytest.mark.parametrize("law, predict, ignored, takes", [
    # a sigmoid of a task loss takes no compute: the flops given were dropped, and no distance was checked
    (["--law", "sigmoid", "--x", "task_bpb", "--y", "accuracy"], "task_bpb=0.5,flops=1e30", "flops", "task_bpb"),
    (["--law", "gpt4-loss", "--y", "task_bpb"], "flops=1e22,params=1e9", "params", "flops"),
])
def test_a_prediction_input_the_law_does_not_take_is_refused(tmp_path, capsys, law, predict, ignored, takes):
    table = _accuracy_table(tmp_path / "t.csv")
    code = _main(["fit", str(table), *law, "--bootstrap", "50", "--predict", predict, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("augury fit: error: --predict:"), err
    assert f"{ignored} is not an input of --law {law[1]} (it takes {takes})" in err[0]
    assert not (tmp_path / "o").exists()
