"""`augury fit`: fit a scaling law to a runs table, forecast with intervals, write DIR/fit.json and DIR/fit.png.

    augury fit runs.csv --law gpt4-loss --predict "flops=1e24" --out fits/
    augury fit runs.csv --law chinchilla --fit-where "params<1e9" --optimal-for 1e23 --out fits/
    augury fit runs.csv --law capability --problems problems.jsonl --out fits/   # per-problem pass rates

Exit status: 0 on success; 2 on bad input (one line naming the column/row); 1 when the fit did not converge
(fit.json still says `not-converged`) unless --allow-unconverged.
"""

from __future__ import annotations

import os

# Tiny per-fit linear algebra runs faster single-threaded (and does not fight other processes for cores).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pathlib import Path

import numpy as np

from augury.command import function_cli
from augury.errors import UsageError
from augury.io import atomic_write_json, git_hash, not_a_folder, utc_now
from augury.scaling.diagnostics import metric_trends
from augury.scaling.tables import TableError, columns_from, parse_assignments, read_table, select

# Columns never trend-checked as metrics: inputs, identifiers and bookkeeping.
NON_METRICS = {"name", "run", "params", "tokens", "flops", "step", "_step", "seed"}


def load_rows(table: str, where: str | None) -> list[dict]:
    """Rows of TABLE, restricted to EXPR when given; TableError becomes a one-line usage error."""
    try:
        rows = read_table(table)
        if where:
            rows = [r for r, keep in zip(rows, select(rows, where)) if keep]
    except TableError as err:
        raise UsageError(str(err)) from None
    return rows


def check_options(bootstrap: int, level: float, delta: float, intervals_for: str | None = None,
                  max_iter: int = 1, law: str | None = None, x: str | None = None) -> None:
    """Refuse settings no fit can use, before any work; `intervals_for` names what makes --bootstrap 0 (no
    intervals) unusable, e.g. "--predict"; an --x the law would ignore is refused too."""
    from augury.scaling.laws import x_column_problem
    from augury.scaling.limits import check_settings

    if law and (problem := x_column_problem(law, x)):
        raise UsageError(f"--x {x}: {problem}")
    try:
        check_settings(bootstrap, level, delta, prefix="--", intervals_for=intervals_for, max_iter=max_iter)
    except TableError as err:
        raise UsageError(str(err)) from None


def run_fit(law: str, rows, y: str | None, x: str | None, bootstrap: int, seed: int, level: float,
            delta: float, max_iter: int, chance: float | None = None):
    from augury.scaling.result import fit_law

    if chance is not None and (law != "sigmoid" or not 0.0 <= chance < 1.0):
        raise UsageError("--chance goes with --law sigmoid and must be in [0, 1)")
    try:
        return fit_law(law, rows, y=y, x_column=x, bootstrap=bootstrap, seed=seed, level=level, delta=delta,
                       max_iter=max_iter, chance=chance)
    except TableError as err:
        raise UsageError(str(err)) from None


def describe_prediction(p: dict) -> str:
    """One line for a prediction record: the value and interval, or why there is none."""
    inputs = ", ".join(f"{k}={v:.4g}" for k, v in p["inputs"].items())
    if p.get("status") == "not-forecastable":
        line = f"  predict {inputs}: NOT FORECASTABLE: {p['reason']}"
    else:
        iv = p["interval"]
        shown = (f"[{iv[0]:.5g}, {iv[1]:.5g}]" if np.isfinite(iv).all()
                 else "(no interval: no bootstrap resample converged)")
        line = f"  predict {inputs}: {p['value']:.5g}  {shown}"
        if p.get("rel_error") is not None:
            line += f"  actual {p['actual']:.5g} ({100 * p['rel_error']:+.2f}%)"
        if p.get("status") == "degenerate":
            alts = ", ".join(f"{k}: {v:.5g}" for k, v in p.get("alternatives", {}).items())
            line += f"  DEGENERATE FIT ({p['reason']})" + (f"; the data cannot rule out {alts}" if alts else "")
    if p.get("warning"):
        line += f"  warning: {p['warning']}"
    return line


def flagged_trends(rows, result) -> dict[str, dict]:
    """Trend shape of every numeric metric column against compute (for columns besides the fitted one)."""
    cols = columns_from(rows)
    if "flops" not in cols:
        return {}
    skip = NON_METRICS | set(result.law.inputs)
    return metric_trends(cols, cols["flops"], skip=skip)


def fit(table: str, *, law: str, out: str, y: str | None = None, x: str | None = None,
        fit_where: str | None = None, predict: str | None = None, actual: float | None = None,
        bootstrap: int = 1000, seed: int = 0, level: float = 0.9, delta: float = 1e-3,
        optimal_for: float | None = None, problems: str | None = None, buckets: int = 3, max_iter: int = 2000,
        chance: float | None = None, allow_unconverged: bool = False) -> int:
    """Fit a scaling law to a runs table (CSV or JSONL) and forecast with bootstrap intervals.

    Args:
        table: runs table, CSV or JSONL: columns such as name, params, tokens, flops, loss and metrics.
        law: gpt4-loss, power-loss, chinchilla, kaplan-n, kaplan-d, capability, sigmoid or two-step.
        out: output folder for fit.json and fit.png.
        y: column to fit (default: the law's, e.g. loss).
        x: input column of one-input laws (sigmoid: e.g. a task-loss column; default flops).
        fit_where: fit only rows matching this expression, e.g. "flops<1e21 and name!='bad'".
        predict: the law's inputs to forecast at (no others), e.g. "flops=1e24" or "params=7e9,tokens=4e12"; several
            separated by ';'.
        actual: the observed value at the (single) --predict point, drawn and scored when known (not with
            --problems: a capability forecast is one value per difficulty bucket).
        bootstrap: bootstrap resamples over runs (0: no intervals, not with --predict; else at least 2/(1-level)).
        seed: bootstrap seed.
        level: interval coverage (0.9: 5th-95th percentiles).
        delta: Huber delta on log residuals.
        optimal_for: (chinchilla) compute budget in FLOPs: report the compute-optimal N*(C), D*(C).
        problems: (capability) per-problem JSONL {run, problem, n, c}; TABLE then gives each run's compute.
        buckets: (capability) number of difficulty buckets.
        max_iter: L-BFGS-B iteration limit.
        chance: (sigmoid) the task's chance accuracy: the fit's floor, and the low end of every interval.
        allow_unconverged: exit 0 even when the fit did not converge.
    """
    # two-step's --x is step 2's task-loss column, not an input of a law
    check_options(bootstrap, level, delta, "--predict" if predict else None, max_iter, law,
                  None if law == "two-step" else x)
    if chance is not None and law != "sigmoid":  # two-step and capability return before run_fit would refuse it
        raise UsageError("--chance goes with --law sigmoid and must be in [0, 1)")
    if why := not_a_folder(out):
        raise UsageError(f"--out {why}")
    rows = load_rows(table, fit_where)
    out_dir = Path(out)
    queries = []
    try:
        queries = [parse_assignments(p) for p in predict.split(";")] if predict else []
    except TableError as err:
        raise UsageError(str(err)) from None
    check_prediction_inputs(law, x, queries)
    if actual is not None and len(queries) != 1:
        raise UsageError("--actual needs exactly one --predict point")
    if actual is not None and not (np.isfinite(actual) and actual > 0):
        # the fitted column's own rule (its log is taken); the relative error also divides by it
        raise UsageError(f"--actual must be a finite number > 0, as the fitted column's values are; got {actual:g}")
    if actual is not None and (why := actual_range_problem(law, x, actual)):
        raise UsageError(f"--actual: {why}")
    if optimal_for is not None and law != "chinchilla":
        raise UsageError("--optimal-for needs --law chinchilla (N*(C), D*(C) come from its two exponents)")
    if optimal_for is not None and not (np.isfinite(optimal_for) and optimal_for > 0):
        raise UsageError(f"--optimal-for must be a compute budget > 0 in FLOPs, got {optimal_for:g}")
    if law == "capability" and problems:
        if actual is not None:
            raise UsageError("--actual does not apply to --law capability: its forecast is one value per difficulty "
                             "bucket, not one number to score")
        if buckets < 1:
            raise UsageError(f"--buckets must be at least 1, got {buckets}")
        return _fit_capability(rows, table, problems, out_dir, capability_queries(queries), bootstrap, seed, level,
                               buckets, allow_unconverged)
    if law == "two-step":
        return _fit_two_step(rows, x, y, out_dir, queries, actual, bootstrap, seed, level, delta, allow_unconverged)
    result = run_fit(law, rows, y, x, bootstrap, seed, level, delta, max_iter, chance)
    try:
        forecasts = [result.forecast(q, actual=[actual])[0] for q in queries]
    except TableError as err:
        raise UsageError(f"--predict: {err}") from None
    report = result.to_json()
    report["predictions"] = forecasts
    report["metric_trends"] = flagged_trends(rows, result)
    for col, t in report["metric_trends"].items():
        if t["shape"] in ("inverse", "u-shaped") and col != result.y_column:
            report["warnings"].append(f"metric {col} shows {t['shape']} scaling: {t['detail']}")
    if optimal_for is not None:
        report["optimal"] = _optimal(result, optimal_for)
    report["provenance"] = {"table": str(table), "fit_where": fit_where, "created": utc_now(), "git": git_hash()}
    from augury.scaling.plotting import plot_fit

    notes = [w for w in report["warnings"] if "scaling" in w]
    plot_fit(result, out_dir / "fit.png", forecasts, notes=notes)
    atomic_write_json(out_dir / "fit.json", report)
    _print_summary(report)
    return exit_code(result.status, allow_unconverged)


def actual_range_problem(law: str, x: str | None, actual: float) -> str:
    """Why --actual cannot be a value of the fitted column ("" when it can): above the law's range, as a fitted
    row would be (fit_law). Two-step's --actual is step 2's accuracy; an unknown law is reported by the fit."""
    from augury.scaling.laws import get_law
    from augury.scaling.limits import above_range

    try:
        fitted = get_law("sigmoid") if law == "two-step" else get_law(law, x)
    except TableError:
        return ""
    return above_range(fitted, actual)


def _optimal(result, flops: float) -> dict:
    """Hoffmann et al.'s N*(C), D*(C) with bootstrap intervals, or `status: "not-forecastable"` and a `reason` (the
    numbers kept as `unsupported`) when the rows cannot identify the trade-off between N and D or the allocation lies
    too far outside them."""
    from augury.scaling.limits import extrapolation_refusal, extrapolation_warning
    from augury.scaling.result import COLLINEAR_CORR

    law = result.law
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a draw with an exponent at 0
        n_opt, d_opt = law.compute_optimal(result.theta, flops)
        out = {"flops": flops, "status": "ok", "params": float(n_opt[0]), "tokens": float(d_opt[0]),
               "loss": float(law.predict(result.theta, {"params": n_opt, "tokens": d_opt})[0, 0])}
        if result.boot_theta is not None and len(result.boot_theta):
            nb, db = law.compute_optimal(result.boot_theta, flops)
            q = [(1 - result.level) / 2 * 100, (1 + result.level) / 2 * 100]
            out["params_interval"] = [float(v) for v in np.percentile(nb, q)]
            out["tokens_interval"] = [float(v) for v in np.percentile(db, q)]
    corr = abs(np.corrcoef(np.log(result.x["params"]), np.log(result.x["tokens"]))[0, 1])
    at_bound = [n for n in result._params_at_bound() if n in ("log_A", "log_B", "alpha", "beta")]
    decades = float(result.extrapolation_decades({"params": n_opt, "tokens": d_opt})[0])
    if corr > COLLINEAR_CORR:
        reason = (f"every run has nearly one tokens/params ratio (|corr of logs| {corr:.3f} > {COLLINEAR_CORR:g}): the "
                  f"rows do not show how params and tokens trade off, which is what N*(C), D*(C) is; vary the ratio")
    elif at_bound:
        reason = f"{', '.join(at_bound)} at a bound: the rows cannot identify the exponents N*(C), D*(C) rest on"
    else:
        reason = extrapolation_refusal(decades) if np.isfinite(decades) else "N*(C) or D*(C) is not finite"
    if reason:
        keep = ("params", "tokens", "loss", "params_interval", "tokens_interval")
        out["unsupported"] = {k: out[k] for k in keep if k in out}
        out.update({k: None for k in keep}, status="not-forecastable", reason=reason)
    elif extrapolation_warning(decades):
        out["warning"] = extrapolation_warning(decades)
    return out


def check_prediction_inputs(law: str, x: str | None, queries: list[dict]) -> None:
    """UsageError for a --predict input the law does not take, before anything is fitted: its value would be
    dropped without a word (a compute given with a sigmoid of a task loss: no compute used, no distance from the
    runs checked). Capability points take flops, or params and tokens (`capability_queries`)."""
    from augury.scaling.laws import get_law

    if law == "capability" or not queries:
        return
    try:
        taken = get_law("chinchilla") if law == "two-step" else get_law(law, x)  # two-step: step 1's inputs
    except TableError as err:
        raise UsageError(str(err)) from None
    takes = taken.inputs
    for j, q in enumerate(queries, 1):
        for key, value in q.items():
            if key not in takes:
                raise UsageError(f"--predict: {key} is not an input of --law {law} (it takes {', '.join(takes)}), "
                                 f"so its value would be ignored")
            logged = key not in taken.raw_inputs
            if not np.isfinite(value) or (logged and value <= 0):
                # named here, before the fit, by the point it is in (the fitted law would call each point row 1)
                point = f" point {j}" if len(queries) > 1 else ""
                raise UsageError(f"--predict{point}: {key}={value:g} must be a finite number"
                                 + (" > 0 (its log is taken)" if logged else ""))


def capability_queries(queries: list[dict]) -> list[dict]:
    """The --predict points of a capability fit, each with its compute `flops` (given, or 6 * params * tokens);
    UsageError for a point without one, or with one that is not a number > 0."""
    out = []
    for q in queries:
        if "flops" in q:
            flops = q["flops"]
        elif "params" in q and "tokens" in q:
            flops = 6.0 * q["params"] * q["tokens"]
        else:
            given = ",".join(f"{k}={v:g}" for k, v in q.items())
            raise UsageError(f"--predict {given!r}: --law capability forecasts at a compute: give flops=... (or "
                             f"params=... and tokens=..., flops = 6*params*tokens)")
        if not (np.isfinite(flops) and flops > 0):
            raise UsageError(f"--predict: flops={flops:g} must be a finite number > 0 (its log is taken)")
        out.append({**q, "flops": float(flops)})
    return out


def _fit_capability(rows, table, problems, out_dir, queries, bootstrap, seed, level, buckets,
                    allow_unconverged) -> int:
    from augury.scaling.capability import fit_capability
    from augury.scaling.tables import read_problems, run_compute

    try:
        records = read_problems(problems)
        flops = run_compute(rows, {str(r["run"]) for r in records}, str(table))
        cap = fit_capability(records, flops, buckets, bootstrap=bootstrap, seed=seed, level=level)
    except TableError as err:
        raise UsageError(f"capability: {err}") from None
    report = cap.to_json()
    report["predictions"] = [{"inputs": q, "buckets": cap.predict(q["flops"])} for q in queries]
    from augury.scaling.limits import refuse
    from augury.scaling.plotting import plot_fit

    fc_status, fc_reason = cap.forecastability()
    first = cap.buckets[0]["fit"]
    shown = [first.forecast({"flops": q["flops"]})[0] for q in queries]
    if fc_status != "ok":  # the bucket's own fit says nothing of its siblings: the whole fit's verdict
        shown = [rec if rec["status"] == "not-forecastable" else refuse(rec, fc_reason) for rec in shown]
    plot_fit(first, out_dir / "fit.png", shown, title=f"capability, bucket 0 of {len(cap.buckets)} (easiest)",
             notes=[] if fc_status == "ok" else [f"{fc_status.upper()}: {fc_reason}"])
    atomic_write_json(out_dir / "fit.json", report)
    print(f"capability: {len(cap.buckets)} buckets, {len(cap.dropped_problems)} problems dropped "
          f"(unsolved by some run), status {cap.status}"
          + ("" if fc_status == "ok" else f"   NOT FORECASTABLE: {fc_reason}"))
    for p in report["predictions"]:
        for b in p["buckets"]:
            head = f"  flops={p['inputs']['flops']:.3g} bucket {b['bucket']}: "
            if b["value"] is None:
                print(head + f"NOT FORECASTABLE: {b['reason']}")
                continue
            print(head + f"-E[log pass] = {b['value']:.4g} [{b['interval'][0]:.4g}, {b['interval'][1]:.4g}]"
                  + (f"  warning: {b['warning']}" if b.get("warning") else ""))
    return exit_code(cap.status, allow_unconverged)


def _fit_two_step(rows, x, y, out_dir, queries, actual, bootstrap, seed, level, delta, allow_unconverged) -> int:
    """Two-step (OLMo ladder): --x is the task-loss column, --y the accuracy column. Step 1 uses the rows whose
    `final` column is true (every row when there is no such column); step 2 uses every row, grouped by `name`."""
    from augury.scaling.plotting import plot_fit
    from augury.scaling.two_step import fit_two_step

    if not x or not y:
        raise UsageError("--law two-step needs --x TASK_LOSS_COLUMN and --y ACCURACY_COLUMN")
    cols = sorted(columns_from(rows))
    for option, column, what in (("--x", x, "the task loss: step 1 fits it, step 2 takes it as input"),
                                 ("--y", y, "the accuracy step 2 fits")):
        if column not in cols:  # named here: the fit would say only which value it missed, not which option
            raise UsageError(f"{option} {column}: the table has no column {column!r} ({what}); columns: {cols}")
    final = [r for r in rows if r.get("final") in (1.0, "true", "True", "yes")] if "final" in rows[0] else rows
    if not final:
        raise UsageError("column 'final' marks no row as a run's final checkpoint (true/1/yes)")
    try:
        res = fit_two_step(final, rows, loss=x, accuracy=y, group="name" if "name" in rows[0] else None,
                           bootstrap=bootstrap, seed=seed, level=level, delta=delta)
    except TableError as err:
        raise UsageError(str(err)) from None
    report = res.to_json()
    try:
        report["predictions"] = [res.forecast(q, actual=[actual])[0] for q in queries]
    except TableError as err:
        raise UsageError(f"--predict: {err}") from None
    plot_fit(res.step2, out_dir / "fit.png", title=f"two-step, step 2: {y} vs {x}")
    atomic_write_json(out_dir / "fit.json", report)
    fc = report["forecastability"]
    print(f"two-step: step 1 {res.step1.status} ({len(final)} final rows), "
          f"step 2 {res.step2.status} ({len(rows)} rows)"
          + ("" if fc["status"] == "ok" else f"   {fc['status'].upper()}: {fc['reason']}"))
    for p in report["predictions"]:
        inputs = ", ".join(f"{k}={v:.4g}" for k, v in p["inputs"].items())
        if p["status"] == "not-forecastable":
            print(f"  predict {inputs}: {y} NOT FORECASTABLE: {p['reason']} (task loss {p['task_loss']:.4g})")
        else:
            print(f"  predict {inputs}: {y} = {p['value']:.4g} [{p['interval'][0]:.4g}, {p['interval'][1]:.4g}]"
                  f" (task loss {p['task_loss']:.4g})"
                  + (f"  actual {p['actual']:.4g} ({100 * p['rel_error']:+.2f}%)" if p.get("rel_error") is not None
                     else "")
                  + (f"  DEGENERATE FIT ({p['reason']})" if p["status"] == "degenerate" else "")
                  + (f"  warning: {p['warning']}" if p.get("warning") else ""))
    return exit_code(res.status, allow_unconverged)


def exit_code(status: str, allow_unconverged: bool) -> int:
    if status != "converged":
        print("fit status: not-converged" + ("" if allow_unconverged else " (exit 1; --allow-unconverged to accept)"))
        return 0 if allow_unconverged else 1
    return 0


def _print_summary(report: dict) -> None:
    fc = report.get("forecastability", {"status": "ok"})
    print(f"{report['law']}: {report['formula']}   status: {report['status']}   n={report['n_points']}"
          + ("" if fc["status"] == "ok" else f"   {fc['status'].upper()}: {fc['reason']}"))
    for k, v in report["parameters"].items():
        iv = v["interval"]
        print(f"  {k:>8} = {v['value']:.6g}" + (f"  [{iv[0]:.4g}, {iv[1]:.4g}]" if iv else ""))
    for p in report.get("predictions", []):
        print(describe_prediction(p))
    if "optimal" in report:
        o = report["optimal"]
        if o["status"] == "not-forecastable":
            print(f"  compute-optimal at C={o['flops']:.3g}: NOT FORECASTABLE: {o['reason']}")
        else:
            print(f"  compute-optimal at C={o['flops']:.3g}: N*={o['params']:.4g}, D*={o['tokens']:.4g}"
                  + (f"  warning: {o['warning']}" if o.get("warning") else ""))
    for w in report["warnings"]:
        print(f"  warning: {w}")


def main(argv: list[str]) -> int:
    return int(function_cli(fit, argv, prog="augury fit") or 0)
