"""Capability fits from per-problem {run, problem, n, c} records with the GPT-4 report's protocol."""

import json
import re

import numpy as np
import pytest

from augury.cli import main
from augury.scaling import TableError, fit_capability


def _records(seed=0):
    """Runs s < m < l < xl; pass rates follow -log p = alpha_bucket * C^-k, plus one problem nobody solves."""
    rng = np.random.default_rng(seed)
    flops = {"s": 1e18, "m": 1e19, "l": 1e20, "xl": 1e21}
    recs = []
    for j in range(30):
        alpha = [0.3, 1.0, 3.0][j // 10] * np.exp(0.1 * 20 * np.log(10))  # easy .. hard buckets
        for run, c in flops.items():
            p = np.exp(-alpha * c ** -0.1)
            n = 2000
            recs.append({"run": run, "problem": f"p{j:02d}", "n": n, "c": int(rng.binomial(n, p))})
    recs += [{"run": r, "problem": "never", "n": 100, "c": 0 if r == "s" else 3} for r in flops]
    return recs, flops


def test_protocol_drops_unsolved_and_buckets_by_small_model():
    recs, flops = _records()
    cap = fit_capability(recs, flops, n_buckets=3, bootstrap=100)
    assert cap.dropped_problems == ["never"]
    assert [len(b["problems"]) for b in cap.buckets] == [10, 10, 10]
    assert set(cap.buckets[0]["problems"]) == {f"p{j:02d}" for j in range(10)}  # easiest first
    for b in cap.buckets:
        assert b["fit"].params["k"] == pytest.approx(0.1, abs=0.01)
    pred = cap.predict(1e22)
    truth = 3.0 * np.exp(0.1 * 20 * np.log(10)) * 1e22 ** -0.1
    assert pred[2]["interval"][0] < truth < pred[2]["interval"][1]


def test_independent_selection_samples_choose_the_kept_problems():
    recs, flops = _records()
    select, _ = _records(seed=1)  # other samples of the same runs and problems
    # problem p00 happens to be unsolved by run "s" in the estimation samples, and "never" is solved in selection
    recs = [{**r, "c": 0} if (r["run"], r["problem"]) == ("s", "p00") else r for r in recs]
    select = [{**r, "c": 1} if r["problem"] == "never" else r for r in select]
    cap = fit_capability(recs, flops, n_buckets=3, bootstrap=0, select_records=select)
    kept = {p for b in cap.buckets for p in b["problems"]}
    assert "p00" in kept and "never" in kept and cap.dropped_problems == []  # selection used the other samples
    with pytest.raises(TableError, match="select_records must cover"):
        fit_capability(recs, flops, bootstrap=0, select_records=select[:-1])


def test_missing_compute_is_an_error():
    recs, flops = _records()
    del flops["m"]
    with pytest.raises(TableError, match="no compute given for run 'm'"):
        fit_capability(recs, flops)
    for bad in (float("nan"), -1e19, True):
        with pytest.raises(TableError, match="run 'm': compute .* must be a finite number > 0"):
            fit_capability(recs, {**flops, "m": bad})


def test_cli_capability(tmp_path):
    recs, flops = _records()
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    (tmp_path / "runs.csv").write_text("name,flops\n" + "\n".join(f"{k},{v:g}" for k, v in flops.items()) + "\n")
    assert main(["fit", str(tmp_path / "runs.csv"), "--law", "capability", "--problems", str(tmp_path / "p.jsonl"),
                 "--predict", "flops=1e22", "--bootstrap", "50", "--out", str(tmp_path / "o")]) == 0
    report = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert report["law"] == "capability" and len(report["buckets"]) == 3
    assert len(report["predictions"][0]["buckets"]) == 3


def test_cli_capability_prints_each_warning_and_refuses_far_points(tmp_path, capsys):
    recs, flops = _records()
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    (tmp_path / "runs.csv").write_text("name,flops\n" + "\n".join(f"{k},{v:g}" for k, v in flops.items()) + "\n")
    assert main(["fit", str(tmp_path / "runs.csv"), "--law", "capability", "--problems", str(tmp_path / "p.jsonl"),
                 "--predict", "flops=1e24;flops=1e300", "--bootstrap", "50", "--out", str(tmp_path / "o")]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if " bucket " in ln]
    assert len(lines) == 6
    assert all("warning: extrapolates 3.0 decades" in ln for ln in lines[:3])
    assert all("NOT FORECASTABLE" in ln and "decades outside the fitted data" in ln for ln in lines[3:])
    far = json.loads((tmp_path / "o" / "fit.json").read_text())["predictions"][1]["buckets"]
    assert all(b["value"] is None and b["status"] == "not-forecastable" for b in far)


def _write_inputs(tmp_path, table_rows=None, edit=None):
    recs, flops = _records()
    recs = edit(recs) if edit else recs
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    rows = table_rows or [f"{k},{v:g}" for k, v in flops.items()]
    (tmp_path / "runs.csv").write_text("name,flops\n" + "\n".join(rows) + "\n")


def _set(i, **kv):
    return lambda recs: [{**r, **kv} if j == i else r for j, r in enumerate(recs)]


@pytest.mark.parametrize("table, edit, args, message", [
    (["s,1e18", "m,abc", "l,1e20", "xl,1e21"], None, [], "runs.csv: column 'flops' row 2 (name 'm'): 'abc' is not a "
                                                         "number"),
    (["s,1e18", "m,-1e19", "l,1e20", "xl,1e21"], None, [], "row 2 (name 'm'): -1e+19 must be a finite number > 0"),
    (["s,1e18", "m,0", "l,1e20", "xl,1e21"], None, [], "row 2 (name 'm'): 0 must be a finite number > 0"),
    (["s,1e18", "m,1e18", "l,1e18", "xl,1e18"], None, [], "every run in the records has the compute 1e+18"),
    (None, None, ["--predict", "flops=-5"], "--predict: flops=-5 must be a finite number > 0"),
    (None, None, ["--predict", "tokens=1e22"], "give flops=... (or params=... and tokens=..."),
    (None, None, ["--predict", "flops=1e22", "--actual", "0.3"], "--actual does not apply to --law capability"),
    (None, _set(5, n=float("inf")), [], "p.jsonl: line 6: n and c are numbers of samples: need whole numbers with "
                                        "n >= 1 and 0 <= c <= n, got n=Infinity"),
    (None, _set(5, c=1.5), [], "line 6: .* got n=2000, c=1.5"),
    (None, _set(5, n=True, c=True), [], "line 6: .* got n=true, c=true"),
    (None, _set(5, run=None), [], "line 6: run must be a name"),
    (None, lambda recs: recs + [recs[0]], [], "line 125 repeats run 's', problem 'p00' of line 1"),
    (None, None, ["--buckets", "0"], "--buckets must be at least 1, got 0"),  # was numpy's ValueError traceback
])
def test_cli_capability_bad_input_is_one_error(tmp_path, capsys, table, edit, args, message):
    _write_inputs(tmp_path, table, edit)
    code = main(["fit", str(tmp_path / "runs.csv"), "--law", "capability", "--problems", str(tmp_path / "p.jsonl"),
                 *args, "--bootstrap", "20", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(message if ".*" in message else re.escape(message), err), err
    assert "neg_log_pass_rate" not in err and not (tmp_path / "o").exists()


def test_cli_capability_predicts_from_params_and_tokens(tmp_path, capsys):
    _write_inputs(tmp_path)
    assert main(["fit", str(tmp_path / "runs.csv"), "--law", "capability", "--problems", str(tmp_path / "p.jsonl"),
                 "--predict", "params=1e9,tokens=1e10", "--bootstrap", "20", "--out", str(tmp_path / "o")]) == 0
    pred = json.loads((tmp_path / "o" / "fit.json").read_text())["predictions"]
    assert len(pred) == 1 and pred[0]["inputs"]["flops"] == pytest.approx(6e19) and len(pred[0]["buckets"]) == 3
    assert "flops=6e+19 bucket 2" in capsys.readouterr().out


def test_a_bucket_the_largest_run_always_solves_is_refused_naming_that_run():
    # the easy bucket: the two smaller runs fail now and then, the largest solves every sample; its -log pass rate is
    # 0, which the law alpha * C^(-k) never reaches. The error must say which run, not that every problem is solved.
    records = []
    for run, easy_c in (("s", 60), ("m", 80), ("l", 100)):
        for p in ("e1", "e2"):
            records.append({"run": run, "problem": p, "n": 100, "c": easy_c})
        for p in ("h1", "h2", "h3", "h4"):
            records.append({"run": run, "problem": p, "n": 100, "c": easy_c // 4})
    with pytest.raises(TableError) as err:
        fit_capability(records, {"s": 1e18, "m": 1e19, "l": 1e20}, n_buckets=3, bootstrap=20)
    message = str(err.value)
    assert "'l'" in message and "every problem is always solved" not in message


def _flat_records(rising_bucket=False):
    """Runs s < m < l < xl whose pass rates do not change with compute (optionally the easiest bucket rising)."""
    rng = np.random.default_rng(3)
    flops = {"s": 1e18, "m": 1e19, "l": 1e20, "xl": 1e21}
    recs = []
    for j in range(30):
        for run, c in flops.items():
            p = [0.6, 0.3, 0.1][j // 10]
            if rising_bucket and j < 10:
                p = np.exp(-0.3 * np.exp(0.1 * 20 * np.log(10)) * c ** -0.1)
            recs.append({"run": run, "problem": f"p{j:02d}", "n": 2000, "c": int(rng.binomial(2000, p))})
    return recs, flops


def test_a_ladder_whose_pass_rates_do_not_improve_is_not_forecastable(tmp_path, capsys):
    # every bucket's exponent k has an interval reaching 0: `augury forecast` refuses such data, so `augury fit`
    # must too (it printed each bucket's value with an interval, status ok)
    recs, flops = _flat_records()
    cap = fit_capability(recs, flops, n_buckets=3, bootstrap=100)
    status, reason = cap.forecastability()
    assert status == "not-forecastable" and "does not improve measurably" in reason
    assert all(p["value"] is None and p["interval"] is None and p["unsupported_value"] > 0
               and p["reason"] == reason for p in cap.predict(1e22))
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    (tmp_path / "runs.csv").write_text("name,flops\n" + "\n".join(f"{k},{v:g}" for k, v in flops.items()) + "\n")
    assert main(["fit", str(tmp_path / "runs.csv"), "--law", "capability", "--problems", str(tmp_path / "p.jsonl"),
                 "--predict", "flops=1e22", "--bootstrap", "100", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert out.count("NOT FORECASTABLE: the pass rate does not improve measurably") == 4  # the header, 3 buckets
    report = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert report["forecastability"]["status"] == "not-forecastable"
    assert all(b["value"] is None for b in report["predictions"][0]["buckets"])


def test_one_flat_bucket_among_rising_ones_is_still_forecast():
    # as in `augury forecast`: the refusal is for a ladder on which nothing improves; one flat bucket is not that
    recs, flops = _flat_records(rising_bucket=True)
    cap = fit_capability(recs, flops, n_buckets=3, bootstrap=100)
    assert cap.forecastability() == ("ok", "")
    assert all(p["status"] == "ok" and p["value"] is not None for p in cap.predict(1e21))
