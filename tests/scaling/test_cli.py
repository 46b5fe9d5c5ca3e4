"""`augury fit` and `augury backtest` on a table made by hand, as a new user would run them."""

import json

import pytest

from augury.cli import main


def test_fit_writes_json_and_plot(runs_csv, tmp_path, capsys):
    out = tmp_path / "fit"
    code = main(["fit", str(runs_csv), "--law", "chinchilla", "--predict", "params=7e9,tokens=1.4e11",
                 "--bootstrap", "100", "--optimal-for", "1e22", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "fit.json").read_text())
    assert report["law"] == "chinchilla" and report["status"] == "converged"
    assert set(report["parameters"]) == {"A", "B", "E", "alpha", "beta"}
    assert report["parameters"]["alpha"]["interval"][0] < report["parameters"]["alpha"]["value"]
    pred = report["predictions"][0]
    assert pred["inputs"]["params"] == 7e9 and pred["interval"][0] < pred["value"] < pred["interval"][1]
    assert report["optimal"]["params"] * report["optimal"]["tokens"] * 6 == pytest.approx(1e22)
    assert (out / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "chinchilla" in capsys.readouterr().out


def test_fit_where_and_trend_flags(runs_csv, tmp_path):
    out = tmp_path / "fit"
    assert main(["fit", str(runs_csv), "--law", "gpt4-loss", "--fit-where", "params<1e9", "--bootstrap", "0",
                 "--out", str(out)]) == 0
    report = json.loads((out / "fit.json").read_text())
    assert report["n_points"] == 12
    assert report["trend"]["shape"] == "normal"
    assert report["metric_trends"]["accuracy"]["shape"] == "normal"


def test_inverse_scaling_metric_is_flagged(tmp_path):
    rows = ["name,flops,loss,toxicity_loss"]
    for i, c in enumerate([1e18, 3e18, 1e19, 3e19, 1e20, 3e20]):
        rows.append(f"r{i},{c:g},{3.5 - 0.2 * i:.3f},{1.0 + 0.1 * i:.3f}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    assert main(["fit", str(tmp_path / "t.csv"), "--law", "gpt4-loss", "--bootstrap", "0",
                 "--out", str(tmp_path / "o")]) == 0
    report = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert report["metric_trends"]["toxicity_loss"]["shape"] == "inverse"
    assert any("toxicity_loss shows inverse scaling" in w for w in report["warnings"])


def test_backtest_writes_rows(runs_csv, tmp_path, capsys):
    out = tmp_path / "bt"
    assert main(["backtest", str(runs_csv), "--law", "chinchilla", "--holdout", "params>=1e9",
                 "--bootstrap", "100", "--out", str(out)]) == 0
    report = json.loads((out / "backtest.json").read_text())
    assert report["n_holdout"] == 3 and report["n_fit"] == 12
    row = report["rows"][0]
    assert set(row) >= {"name", "predicted", "actual", "rel_error", "interval", "covered"}
    assert row["rel_error"] == pytest.approx(row["predicted"] / row["actual"] - 1)
    assert abs(row["rel_error"]) < 0.05
    assert (out / "backtest.png").is_file()
    assert "m1000M-x10" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--law", "chinchilla", "--y", "perplexity"], "no column 'perplexity'"),
    (["--law", "gpt4-loss", "--fit-where", "params>1e12"], "selects no rows"),
    (["--law", "sigmoid", "--x", "nonexistent", "--y", "accuracy"], "missing column 'nonexistent'"),
    (["--law", "gpt4-loss", "--optimal-for", "1e22"], "--optimal-for needs --law chinchilla"),
])
def test_bad_input_exits_2_with_one_line(runs_csv, tmp_path, capsys, args, message):
    code = main(["fit", str(runs_csv), *args, "--bootstrap", "0", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "fit.json").exists()


def test_unconverged_fit_exits_nonzero_unless_allowed(runs_csv, tmp_path):
    args = ["fit", str(runs_csv), "--law", "chinchilla", "--bootstrap", "0", "--max-iter", "1"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 1
    assert json.loads((tmp_path / "a" / "fit.json").read_text())["status"] == "not-converged"
    assert main([*args, "--allow-unconverged", "--out", str(tmp_path / "b")]) == 0


def _bad_table(runs_csv, tmp_path, kind: str):
    """runs_csv with one defect of `kind`, as CSV or JSONL."""
    lines = runs_csv.read_text().splitlines()
    header, rows = lines[0].split(","), [ln.split(",") for ln in lines[1:]]
    records = [dict(zip(header, r)) for r in rows]
    if kind in ("csv-text-cell", "csv-ragged", "csv-not-utf8", "text-y"):
        if kind == "csv-text-cell":
            rows[2][3] = "abc"
        elif kind == "csv-ragged":
            rows[2] += ["7", "8"]
        body = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
        path = tmp_path / "t.csv"
        path.write_bytes(body.encode("utf-16") if kind == "csv-not-utf8" else body.encode())
        return path
    text = [json.dumps({k: (v if k == "name" else float(v)) for k, v in r.items()}) for r in records]
    if kind == "jsonl-text-cell":
        text[2] = text[2].replace('"loss": ', '"loss": "n/a", "x": ')
    elif kind == "jsonl-bad-line":
        text[2] = text[2][:20]
    elif kind == "jsonl-list-row":
        text[2] = json.dumps(rows[2])
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(text) + "\n")
    return path


@pytest.mark.parametrize("command", ["fit", "backtest"])
@pytest.mark.parametrize("kind, message", [
    ("csv-text-cell", "column 'loss' row 3 (name 'm20M-x60'): 'abc' is not a number"),
    ("jsonl-text-cell", "column 'loss' row 3 (name 'm20M-x60'): 'n/a' is not a number"),
    ("jsonl-bad-line", "t.jsonl: line 3 is not valid JSON"),
    ("jsonl-list-row", "t.jsonl: line 3 is a JSON list, not an object"),
    ("csv-not-utf8", "t.csv: not UTF-8 text"),
    ("csv-ragged", "t.csv: row 3 (line 4) has 7 cells but the header names 5 columns"),
    ("text-y", "column 'name' row 1: 'm20M-x10' is not a number"),
])
def test_a_bad_table_is_one_error_naming_the_column_and_row(runs_csv, tmp_path, capsys, command, kind, message):
    table = _bad_table(runs_csv, tmp_path, kind)
    args = ["--y", "name"] if kind == "text-y" else []
    args += ["--holdout", "params>=1e9"] if command == "backtest" else []
    code = main([command, str(table), "--law", "chinchilla", *args, "--bootstrap", "20", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, message", [
    (["fit", "--level", "2"], "--level must be in (0, 1)"),
    (["backtest", "--level", "5"], "--level must be in (0, 1)"),
    (["fit", "--bootstrap", "-5"], "--bootstrap must be 0 (no intervals) or at least 20 resamples for a 90% interval"),
    (["fit", "--bootstrap", "5"], "--bootstrap must be 0 (no intervals) or at least 20"),
    (["fit", "--bootstrap", "50", "--level", "0.99"], "at least 200 resamples for a 99% interval"),
    (["fit", "--bootstrap", "0", "--predict", "flops=1e22"], "at least 20 resamples for a 90% interval (one beyond "
                                                            "each end): --predict needs intervals; got 0"),
    (["backtest", "--bootstrap", "0"], "a backtest needs intervals; got 0"),
    (["backtest", "--bootstrap", "-1"], "a backtest needs intervals; got -1"),
    (["fit", "--delta", "0"], "--delta (the Huber delta) must be a finite number > 0, got 0.0"),
    (["backtest", "--delta", "-1"], "--delta (the Huber delta) must be a finite number > 0, got -1.0"),
    # no iterations is no fit: it was run and reported "not converged" (exit 1), as if the data were at fault
    (["fit", "--max_iter", "0"], "--max_iter (the L-BFGS-B iteration limit) must be at least 1, got 0"),
    (["backtest", "--max_iter", "-3"], "--max_iter (the L-BFGS-B iteration limit) must be at least 1, got -3"),
])
def test_settings_that_cannot_give_an_interval_are_refused(runs_csv, tmp_path, capsys, args, message):
    command, *rest = args
    holdout = ["--holdout", "params>=1e9"] if command == "backtest" else []
    code = main([command, str(runs_csv), "--law", "gpt4-loss", *holdout, *rest, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_values_in_messages_are_plain_numbers(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("name,flops,loss\na,1e18,-1\nb,1e19,3\nc,1e20,2.5\nd,1e21,2.2\n")
    assert main(["fit", str(tmp_path / "t.csv"), "--law", "gpt4-loss", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "column 'loss' row 1 (name 'a'): -1 must be a finite number > 0" in err and "np." not in err


def test_a_prediction_without_an_interval_prints_no_nan():
    from augury.scaling.cli import describe_prediction

    line = describe_prediction({"inputs": {"flops": 1e22}, "status": "ok", "value": 2.5,
                                "interval": [float("nan"), float("nan")]})
    assert "nan" not in line and "no interval" in line


@pytest.mark.parametrize("cmd, args", [
    ("fit", ["--fit-where", "flops<1e21"]),
    ("backtest", ["--holdout", "flops>=1e21"]),
])
def test_as_many_rows_as_parameters_is_refused(tmp_path, capsys, cmd, args):
    # three rows for three parameters: the fit passed through every row with a zero-width interval, "converged"
    (tmp_path / "t.csv").write_text("name,flops,loss\na,1e18,3.1\nb,1e19,2.7\nc,1e20,2.65\nd,1e21,2.5\n")
    code = main([cmd, str(tmp_path / "t.csv"), "--law", "gpt4-loss", *args, "--bootstrap", "20",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "3 rows but law 'gpt4-loss' has 3 parameters: need at least 4" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("cell, message", [
    ("nan", "has no value"), ("", "has no value"), ("abc", "'abc' is not a number"),
    ("0", "0 must be a finite number > 0"),
])
def test_a_held_out_row_without_a_usable_actual_is_one_error(runs_csv, tmp_path, capsys, cell, message):
    # the last row (m1000M-x60) is held out: its loss was scored as nan ("mean |rel err| nan%", coverage
    # counting it as missed) or a traceback (text), after the whole fit
    lines = runs_csv.read_text().splitlines()
    last = lines[-1].split(",")
    last[3] = cell
    (tmp_path / "t.csv").write_text("\n".join([*lines[:-1], ",".join(last)]) + "\n")
    code = main(["backtest", str(tmp_path / "t.csv"), "--law", "chinchilla", "--holdout", "params>=1e9",
                 "--bootstrap", "20", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"held-out rows: column 'loss' row 3 (name 'm1000M-x60'): {message}" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("cmd, args", [("fit", []), ("backtest", ["--holdout", "params>=1e9"])])
def test_out_that_is_a_file_is_one_error_before_the_fit(runs_csv, tmp_path, capsys, cmd, args):
    out = tmp_path / "taken"
    out.write_text("a file the user already has\n")
    code = main([cmd, str(runs_csv), "--law", "gpt4-loss", *args, "--bootstrap", "20", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is a file, not a folder" in err, err
    assert out.read_text() == "a file the user already has\n"


@pytest.mark.parametrize("actual", ["0", "-2"])
def test_an_actual_that_the_fitted_column_could_not_hold_is_refused(runs_csv, tmp_path, capsys, actual):
    # it was scored: 0 gave a relative error of +inf% (written as 1e308), -2 one of -231%
    code = main(["fit", str(runs_csv), "--law", "gpt4-loss", "--predict", "flops=1e20", "--actual", actual,
                 "--bootstrap", "20", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--actual must be a finite number > 0" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("law, extra", [("sigmoid", ["--y", "accuracy"]), ("two-step", ["--x", "loss", "--y",
                                                                                  "accuracy"])])
def test_an_actual_above_the_laws_range_is_refused(runs_csv, tmp_path, capsys, law, extra):
    # an accuracy given as a percentage: it was scored against the sigmoid's forecast (a -98% error)
    code = main(["fit", str(runs_csv), "--law", law, *extra, "--predict", "params=1e10,tokens=2e11" if law == "two-step"
                 else "flops=1e21", "--actual", "45", "--bootstrap", "20", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--actual: 45 is above 1, the top of the range [0, 1]" in err and "percentages divided by 100" in err
    assert not (tmp_path / "o").exists()


def test_a_held_out_value_above_the_laws_range_is_refused(runs_csv, tmp_path, capsys):
    lines = runs_csv.read_text().splitlines()
    last = lines[-1].split(",")
    last[4] = "45"
    (tmp_path / "t.csv").write_text("\n".join([*lines[:-1], ",".join(last)]) + "\n")
    code = main(["backtest", str(tmp_path / "t.csv"), "--law", "sigmoid", "--y", "accuracy", "--holdout",
                 "params>=1e9", "--bootstrap", "20", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "held-out rows: column 'accuracy' row 3 (name 'm1000M-x60'): 45 is above 1" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("budget", ["0", "-1e22"])
def test_a_compute_budget_that_is_not_positive_is_refused(runs_csv, tmp_path, capsys, budget):
    # it was "compute-optimal at C=0: N*=0, D*=nan" (C=-1e22: N*=nan), with nulls in fit.json
    code = main(["fit", str(runs_csv), "--law", "chinchilla", f"--optimal-for={budget}", "--bootstrap", "20",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--optimal-for must be a compute budget > 0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("cmd, args", [("fit", []), ("backtest", ["--holdout", "params>=1e9"])])
@pytest.mark.parametrize("under", ["", "sub"])
def test_out_that_cannot_be_written_is_one_error_before_the_fit(runs_csv, read_only_dir, capsys, cmd, args, under):
    out = read_only_dir / under if under else read_only_dir
    code = main([cmd, str(runs_csv), "--law", "gpt4-loss", *args, "--bootstrap", "20", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"augury {cmd}: error: --out {out}") and "is not writable" in err


def test_compute_optimal_allocation_is_refused_when_every_run_has_one_tokens_per_param_ratio(tmp_path, capsys):
    # every run at 20 tokens per parameter: the rows say how loss falls along that ratio, not how N and D trade off,
    # which is all N*(C), D*(C) is about; it was printed as N*=1.5e13, D*=1.1e9 for C=1e23
    import numpy as np

    from tests.scaling.conftest import chinchilla_loss

    rng = np.random.default_rng(3)
    n = np.geomspace(2e7, 1e9, 8)
    loss = chinchilla_loss(n, 20 * n) * np.exp(0.005 * rng.standard_normal(8))
    table = tmp_path / "runs.csv"
    table.write_text("name,params,tokens,loss\n" + "".join(f"r{i},{a:g},{20 * a:g},{v:.5f}\n"
                                                           for i, (a, v) in enumerate(zip(n, loss))))
    out = tmp_path / "fit"
    main(["fit", str(table), "--law", "chinchilla", "--bootstrap", "100", "--optimal-for", "1e21", "--out", str(out)])
    optimal = json.loads((out / "fit.json").read_text())["optimal"]
    assert optimal["status"] == "not-forecastable" and "ratio" in optimal["reason"]
    assert optimal["params"] is None and optimal["tokens"] is None and optimal["params_interval"] is None
    captured = capsys.readouterr()
    assert "compute-optimal at C=1e+21: NOT FORECASTABLE" in captured.out
    assert "RuntimeWarning" not in captured.err


def test_compute_optimal_allocation_from_varied_ratios_is_given(runs_csv, tmp_path, capsys):
    out = tmp_path / "fit"
    assert main(["fit", str(runs_csv), "--law", "chinchilla", "--bootstrap", "100", "--optimal-for", "1e21",
                 "--out", str(out)]) == 0
    optimal = json.loads((out / "fit.json").read_text())["optimal"]
    assert optimal["status"] == "ok" and optimal["params_interval"][0] < optimal["params"]


@pytest.mark.parametrize("cmd, law, extra", [
    ("fit", "gpt4-loss", []), ("fit", "chinchilla", []), ("backtest", "gpt4-loss", ["--holdout", "params>=1e9"]),
    ("fit", "capability", []),
])
def test_an_x_column_the_law_does_not_take_is_refused_not_ignored(runs_csv, tmp_path, capsys, cmd, law, extra):
    # `--law gpt4-loss --x accuracy` used to fit loss against flops without a word: the column the user chose
    # played no part in a fit that looked like an answer to what they asked
    code = main([cmd, str(runs_csv), "--law", law, "--x", "accuracy", *extra, "--bootstrap", "0" if cmd == "fit"
                 else "20", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--x accuracy" in err and f"law '{law}'" in err and "would be ignored" in err
    assert not (tmp_path / "o").exists()


def test_an_x_column_is_taken_where_a_law_takes_one(runs_csv, tmp_path):
    assert main(["fit", str(runs_csv), "--law", "kaplan-n", "--x", "tokens", "--bootstrap", "0",
                 "--out", str(tmp_path / "k")]) == 0
    assert json.loads((tmp_path / "k" / "fit.json").read_text())["law"] == "kaplan-d"
    # naming the one input the law takes anyway changes nothing, so it is no mistake
    assert main(["fit", str(runs_csv), "--law", "gpt4-loss", "--x", "flops", "--bootstrap", "0",
                 "--out", str(tmp_path / "g")]) == 0


@pytest.mark.parametrize("predict, message", [
    ("flops=1e22;flops=0", "--predict point 2: flops=0 must be a finite number > 0"),
    ("flops=-1e20", "--predict: flops=-1e+20 must be a finite number > 0"),
    ("flops=1e21;flops=1e22;flops=inf", "--predict point 3: flops=inf must be a finite number > 0"),
])
def test_a_prediction_input_that_is_not_positive_names_its_point(runs_csv, tmp_path, capsys, predict, message):
    # the error used to come from the fitted law, after the fit, as "column 'flops' row 1" whichever point it was
    code = main(["fit", str(runs_csv), "--law", "gpt4-loss", "--predict", predict, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
