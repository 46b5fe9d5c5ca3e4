"""Two-step chain: task loss from (N, D), accuracy from task loss, intervals propagated."""

import numpy as np
import pytest

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
                 "--predict", "params=7e9,tokens=1.4e11", "--actual", "0.9", "--out", str(tmp_path / "o")]) == 0
    report = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert report["law"] == "two-step" and report["step1"]["n_points"] == 15
    pred = report["predictions"][0]
    assert pred["interval"][0] <= pred["value"] <= pred["interval"][1]
    assert pred["actual"] == 0.9 and pred["rel_error"] == pytest.approx(pred["value"] / 0.9 - 1)  # scored, not ignored


def test_a_text_accuracy_in_a_checkpoint_row_is_one_error(tmp_path, capsys):
    from augury.cli import main

    lines = ["name,params,tokens,final,bpb,acc"]
    for i, n in enumerate((2e7, 5e7, 1e8, 3e8, 1e9, 2e9)):
        lines += [f"r{i},{n:g},{n * 5:g},false,{1.3 - 0.1 * i:.2f},{'n/a' if i == 2 else 0.3 + 0.05 * i}",
                  f"r{i},{n:g},{n * 20:g},true,{1.2 - 0.1 * i:.2f},{0.32 + 0.05 * i}"]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    code = main(["fit", str(tmp_path / "t.csv"), "--law", "two-step", "--x", "bpb", "--y", "acc", "--bootstrap", "20",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "checkpoint rows: column 'acc' row 5 (name 'r2'): 'n/a' is not a number" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option, args", [("--x", ["--x", "nope", "--y", "acc"]),
                                          ("--y", ["--x", "bpb", "--y", "nope"])])
def test_a_missing_column_names_the_option_at_fault(tmp_path, capsys, option, args):
    # --x nope said "no column 'nope' (the value to fit; pass y=...)": it pointed at --y
    from augury.cli import main

    lines = ["name,params,tokens,bpb,acc"]
    for i, n in enumerate((2e7, 5e7, 1e8, 3e8, 1e9, 2e9, 5e9)):
        lines += [f"r{i},{n:g},{n * (20 + i):g},{1.2 - 0.1 * i:.2f},{0.32 + 0.05 * i:.2f}"]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    code = main(["fit", str(tmp_path / "t.csv"), "--law", "two-step", *args, "--bootstrap", "0",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{option} nope: the table has no column 'nope'" in err and "y=" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("law, args", [("two-step", ["--x", "bpb", "--y", "acc"]), ("capability", ["--y", "acc"])])
def test_chance_with_a_law_that_does_not_take_it_is_refused(tmp_path, capsys, law, args):
    # two-step and capability fits never read --chance: it was dropped without a word, and the forecast's floor
    # was not the one the user declared
    from augury.cli import main

    lines = ["name,params,tokens,bpb,acc"]
    for i, n in enumerate((2e7, 5e7, 1e8, 3e8, 1e9, 2e9, 5e9)):
        lines += [f"r{i},{n:g},{n * (20 + i):g},{1.2 - 0.1 * i:.2f},{0.32 + 0.05 * i:.2f}"]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    code = main(["fit", str(tmp_path / "t.csv"), "--law", law, *args, "--chance", "0.25",
                 "--bootstrap", "0", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--chance goes with --law sigmoid" in err
    assert not (tmp_path / "o").exists()


def test_anchor_is_in_every_bootstrap_resample():
    from augury.scaling.fitting import bootstrap_counts

    groups = np.array(["a", "a", "b", "c", "anchor"])
    always = np.array([False, False, False, False, True])
    counts = bootstrap_counts(groups, 50, seed=3, always=always)
    assert np.all(counts[:, -1] == 1.0)
    assert np.all(counts[:, 0] == counts[:, 1])  # whole runs are resampled
    assert np.all(counts[:, 0] + counts[:, 2] + counts[:, 3] == 3)  # three draws among the runs a, b, c
    # without an anchor the draw is unchanged from before (same seed, same counts)
    np.testing.assert_array_equal(bootstrap_counts(groups[:4], 50, seed=3), counts[:, :4])

    rng = np.random.default_rng(0)
    rows = []
    for i, bpb in enumerate(np.linspace(0.6, 1.6, 48)):
        acc = 0.25 + 0.7 / (1 + np.exp(6.0 * (bpb - 1.0))) + rng.normal(0, 0.003)
        rows.append({"name": f"r{i // 8}", "params": 1e8 * (1 + i // 8),
                     "tokens": 1e9 * (1 + i % 8) * (1 + (i // 8) % 3), "bpb": bpb, "acc": acc})
    final = [r for i, r in enumerate(rows) if i % 8 == 7]
    res = fit_two_step(final, rows, loss="bpb", accuracy="acc", group="name", fixed_ceiling=False,
                       anchor=(0.0, 1.0), bootstrap=50, step2_delta=10.0)
    assert res.step2.y.shape[0] == len(rows) + 1 and res.step2.y[-1] == 1.0
    assert res.step2.boot_info["n_groups"] == 6  # the anchor is not a run


def _ladder_csv(path, accuracy):
    """Six runs at 20 tokens per parameter: a task loss falling with scale, and accuracy(task loss) with 4% scatter."""
    rng = np.random.default_rng(0)
    lines = ["name,params,tokens,final,bpb,acc"]
    for i, n in enumerate((1e7, 2e7, 4e7, 8e7, 1.6e8, 3.2e8)):
        bpb = 0.6 + 8 / n**0.2 + 8 / (20 * n) ** 0.2
        acc = float(min(accuracy(bpb) * np.exp(rng.normal(0, 0.04)), 0.999))
        lines.append(f"r{i},{n:g},{20 * n:g},true,{bpb!r},{acc!r}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_accuracy_interval_near_the_ceiling_stays_in_range(tmp_path):
    from augury.scaling import read_table

    rows = read_table(_ladder_csv(tmp_path / "t.csv", lambda bpb: 1 / (1 + np.exp(10 * (bpb - 1.1)))))
    res = fit_two_step(rows, rows, loss="bpb", accuracy="acc", group="name", bootstrap=200)
    acc, interval, _ = res.predict([{"params": 1e9, "tokens": 2e10}, {"params": 1e10, "tokens": 2e11}])
    assert acc[1] > 0.97  # near the ceiling, where scatter multiplied onto the accuracy would cross 1
    assert np.all((0.0 <= interval) & (interval <= 1.0)), interval
    assert np.all(interval[:, 0] < acc) and np.all(acc < interval[:, 1])


def test_an_accuracy_flat_at_chance_is_not_forecast(tmp_path, capsys):
    import json

    from augury.cli import main

    table = _ladder_csv(tmp_path / "t.csv", lambda bpb: 0.25)
    code = main(["fit", str(table), "--law", "two-step", "--x", "bpb", "--y", "acc", "--bootstrap", "50",
                 "--predict", "params=1e9,tokens=2e10", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 0
    assert "acc NOT FORECASTABLE: step 2: the fitted rows show no measurable trend with scale" in out
    assert "acc = " not in out
    report = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert report["forecastability"]["status"] == "not-forecastable"
    pred = report["predictions"][0]
    assert pred["status"] == "not-forecastable" and "no measurable trend" in pred["reason"]
    assert pred["value"] is None and pred["interval"] is None
    assert 0.0 <= pred["unsupported_value"] <= 1.0 and pred["task_loss"] > 0


def test_a_step_1_the_rows_cannot_identify_flags_every_forecast(tmp_path, capsys):
    """Every run at 20 tokens per parameter cannot tell the parameter term from the data term: the accuracy is
    still given, flagged, as a degenerate single-law fit is."""
    import json

    from augury.cli import main

    table = _ladder_csv(tmp_path / "t.csv", lambda bpb: 1 / (1 + np.exp(10 * (bpb - 1.1))))
    code = main(["fit", str(table), "--law", "two-step", "--x", "bpb", "--y", "acc", "--bootstrap", "50",
                 "--predict", "params=1e9,tokens=2e10", "--out", str(tmp_path / "o")])
    assert code == 0 and "DEGENERATE FIT (step 1: " in capsys.readouterr().out
    report = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert report["forecastability"]["status"] == "degenerate"
    pred = report["predictions"][0]
    assert pred["status"] == "degenerate" and pred["reason"].startswith("step 1: ") and 0 < pred["value"] < 1


@pytest.mark.parametrize("step", [1, 2])
def test_an_interval_from_too_few_converged_resamples_of_either_step_is_refused(tmp_path, monkeypatch, step):
    # a one-step fit refuses a percentile interval from fewer converged resamples than its level needs; the two-step
    # chain pairs the steps' draws (as many as the shorter has), so it gave "ok" with an interval from 3 draws
    import augury.scaling.result as result_mod
    from augury.scaling import read_table

    real = result_mod.bootstrap_fits

    def mostly_unconverged(problem, theta, groups, n, seed, **kwargs):
        out = real(problem, theta, groups, n, seed, **kwargs)
        if seed == step - 1:  # fit_two_step seeds step 1 with `seed` and step 2 with `seed + 1`
            out.converged[3:] = False
        return out

    monkeypatch.setattr(result_mod, "bootstrap_fits", mostly_unconverged)
    rows = read_table(_ladder_csv(tmp_path / "t.csv", lambda bpb: 1 / (1 + np.exp(10 * (bpb - 1.1)))))
    res = fit_two_step(rows, rows, loss="bpb", accuracy="acc", group="name", bootstrap=50)
    rec = res.forecast({"params": 1e9, "tokens": 2e10})[0]
    assert rec["status"] == "not-forecastable" and rec["value"] is None and rec["interval"] is None
    assert rec["reason"].startswith(f"step {step}: only 3 of 50 bootstrap resamples converged")
    assert 0.0 <= rec["unsupported_value"] <= 1.0
