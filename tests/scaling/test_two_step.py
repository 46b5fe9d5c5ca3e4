"""Two-step chain: task loss from (N, D), accuracy from task loss, intervals propagated."""

import numpy as np

from augury.scaling import fit_two_step

from .conftest import chinchilla_loss


def test_chain_recovers_and_propagates_intervals():
    rng = np.random.default_rng(0)
    final, ckpts = [], []
    for n in (2e7, 5e7, 1e8, 3e8, 1e9):
        for mult in (10, 20, 60):
            name = f"{n:g}-{mult}"
            d_final = n * mult
            for frac in np.linspace(0.1, 1.0, 8):
                bpb = 0.35 * chinchilla_loss(n, d_final * frac) * np.exp(rng.normal(0, 0.002))
                acc = 0.25 + 0.75 / (1 + np.exp(6.0 * (bpb - 1.0))) + rng.normal(0, 0.003)
                row = {"name": name, "params": n, "tokens": d_final * frac, "bpb": bpb, "acc": acc}
                ckpts.append(row)
            final.append(row)
    res = fit_two_step(final, ckpts, loss="bpb", accuracy="acc", group="name", bootstrap=100)
    assert res.status == "converged"
    n, d = 7e9, 1.4e11
    true_bpb = 0.35 * chinchilla_loss(n, d)
    true_acc = 0.25 + 0.75 / (1 + np.exp(6.0 * (true_bpb - 1.0)))
    acc, interval, bpb = res.predict({"params": n, "tokens": d})
    assert abs(bpb[0] / true_bpb - 1) < 0.02
    assert abs(acc[0] / true_acc - 1) < 0.03
    assert interval[0, 0] < acc[0] < interval[0, 1]
    assert interval[0, 1] - interval[0, 0] > 0.0


def test_cli_two_step(tmp_path):
    import json

    from augury.cli import main

    rng = np.random.default_rng(1)
    lines = ["name,params,tokens,final,bpb,acc"]
    for n in (2e7, 5e7, 1e8, 3e8, 1e9):
        for mult in (10, 20, 60):
            for frac in (0.25, 0.5, 0.75, 1.0):
                d = n * mult * frac
                bpb = 0.35 * chinchilla_loss(n, d) * np.exp(rng.normal(0, 0.002))
                acc = 0.25 + 0.75 / (1 + np.exp(6.0 * (bpb - 1.0)))
                lines.append(f"r{n:g}-{mult},{n:g},{d:g},{'true' if frac == 1.0 else 'false'},{bpb:.5f},{acc:.5f}")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    assert main(["fit", str(tmp_path / "t.csv"), "--law", "two-step", "--x", "bpb", "--y", "acc", "--bootstrap", "50",
                 "--predict", "params=7e9,tokens=1.4e11", "--out", str(tmp_path / "o")]) == 0
    report = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert report["law"] == "two-step" and report["step1"]["n_points"] == 15
    pred = report["predictions"][0]
    assert pred["interval"][0] <= pred["value"] <= pred["interval"][1]
