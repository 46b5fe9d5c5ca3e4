"""`augury backtest`: fit a law on the rows outside a hold-out expression, predict the held-out rows, score.

    augury backtest runs.csv --law gpt4-loss --holdout "flops>2e21" --out bt/

Writes DIR/backtest.json (`rows`: name, predicted, actual, rel_error as a fraction, interval, covered; plus the
fit) and DIR/backtest.png, and prints a table. Exit 1 when the fit did not converge unless --allow-unconverged.
"""

from __future__ import annotations

from pathlib import Path

from augury.command import function_cli
from augury.errors import UsageError
from augury.io import atomic_write_json, git_hash, not_a_folder, utc_now
from augury.scaling.cli import check_options, exit_code, load_rows, run_fit
from augury.scaling.laws import get_law
from augury.scaling.limits import check_range
from augury.scaling.tables import TableError, columns_from, numeric_column, select


def backtest(table: str, *, law: str, holdout: str, out: str, y: str | None = None, x: str | None = None,
             bootstrap: int = 1000, seed: int = 0, level: float = 0.9, delta: float = 1e-3, max_iter: int = 2000,
             chance: float | None = None, allow_unconverged: bool = False) -> int:
    """Fit on the rows outside HOLDOUT, predict the rows inside it, and compare with their actual values.

    Args:
        table: runs table, CSV or JSONL.
        law: gpt4-loss, chinchilla, kaplan-n, kaplan-d, capability or sigmoid.
        holdout: expression selecting the held-out rows, e.g. "flops>2e21".
        out: output folder for backtest.json and backtest.png.
        y: column to fit and predict (default: the law's, e.g. loss).
        x: input column of one-input laws (sigmoid, kaplan-*).
        bootstrap: bootstrap resamples over runs (at least 2/(1-level): 20 at the default level).
        seed: bootstrap seed.
        level: interval coverage.
        delta: Huber delta on log residuals.
        max_iter: L-BFGS-B iteration limit.
        chance: (sigmoid) the task's chance accuracy: the fit's floor, and the low end of every interval.
        allow_unconverged: exit 0 even when the fit did not converge.
    """
    check_options(bootstrap, level, delta, "a backtest", max_iter, law, x)
    if why := not_a_folder(out):
        raise UsageError(f"--out {why}")
    rows = load_rows(table, None)
    try:
        mask = select(rows, holdout)
    except TableError as err:
        raise UsageError(str(err)) from None
    train = [r for r, m in zip(rows, mask) if not m]
    held = [r for r, m in zip(rows, mask) if m]
    if not train:
        raise UsageError(f"--holdout {holdout!r} selects every row: nothing is left to fit on")
    # the held-out values are what the forecasts are scored against: each must be a value the fitted column could
    # hold (a number > 0, inside the law's range), checked before the fit rather than scored as nan (or a traceback)
    # after it
    try:
        y_col = y or get_law(law, x).default_y
    except TableError as err:
        raise UsageError(str(err)) from None
    cols, train_cols = columns_from(held), columns_from(train)
    if y_col not in cols:
        raise UsageError(f"held-out rows lack column {y_col!r}: nothing to compare with")
    try:
        if y_col in train_cols:  # the fitted rows' errors first, as the fit would give them
            numeric_column(train_cols, y_col, "table")
        check_range(get_law(law, x), cols, y_col, numeric_column(cols, y_col, "held-out rows"), "held-out rows")
    except TableError as err:
        raise UsageError(str(err)) from None
    result = run_fit(law, train, y, x, bootstrap, seed, level, delta, max_iter, chance)
    try:
        records = result.forecast(held, actual=list(cols[y_col]))
    except TableError as err:
        raise UsageError(f"held-out rows: {err}") from None
    names = [str(r.get("name", f"row{i + 1}")) for i, r in enumerate(held)]
    keep = ("status", "reason", "alternatives", "warning", "unsupported_value", "unsupported_rel_error")
    out_rows = [{"name": n, "predicted": r["value"], "actual": r["actual"], "rel_error": r["rel_error"],
                 "interval": r["interval"], "covered": r["covered"], "inputs": r["inputs"],
                 **{k: r[k] for k in keep if k in r}} for n, r in zip(names, records)]
    scored = [r for r in out_rows if r["rel_error"] is not None]
    refused = [r for r in out_rows if r["rel_error"] is None]
    # a point too far out to compute (an overflow) has no unsupported error to add
    everything = [abs(r["rel_error"] if r["rel_error"] is not None else r["unsupported_rel_error"])
                  for r in out_rows if r["rel_error"] is not None or r.get("unsupported_rel_error") is not None]
    report = {"law": result.law.name, "y": y_col, "holdout": holdout, "status": result.status,
              "n_fit": len(train), "n_holdout": len(held), "rows": out_rows,
              "n_not_forecastable": len(refused),
              # over the rows given a forecast; None when every row was refused
              "mean_abs_rel_error": (float(sum(abs(r["rel_error"]) for r in scored) / len(scored)) if scored
                                     else None),
              "coverage": float(sum(r["covered"] for r in scored) / len(scored)) if scored else None,
              # what the refused rows' unsupported points would have added
              "mean_abs_rel_error_with_not_forecastable": (float(sum(everything) / len(everything)) if everything
                                                           else None),
              "fit": result.to_json(),
              "provenance": {"table": str(table), "created": utc_now(), "git": git_hash()}}
    from augury.scaling.plotting import plot_fit

    plot_fit(result, Path(out) / "backtest.png", records, title=f"backtest {result.law.name}: holdout {holdout}")
    atomic_write_json(Path(out) / "backtest.json", report)
    width = max(len(n) for n in names + ["name"])
    print(f"{'name':<{width}}  {'predicted':>10}  {'actual':>10}  {'rel_err':>8}  {'interval':>23}  covered")
    for r in out_rows:
        if r["rel_error"] is None:
            print(f"{r['name']:<{width}}  {'-':>10}  {r['actual']:>10.5g}  NOT FORECASTABLE: {r['reason']}")
            continue
        print(f"{r['name']:<{width}}  {r['predicted']:>10.5g}  {r['actual']:>10.5g}  {100 * r['rel_error']:>7.2f}%"
              f"  [{r['interval'][0]:>9.5g}, {r['interval'][1]:>9.5g}]  {'yes' if r['covered'] else 'NO'}"
              + (f"  DEGENERATE: {r['reason']}" if r.get("status") == "degenerate" else "")
              + (f"  warning: {r['warning']}" if r.get("warning") else ""))
    summary = f"fit on {len(train)} rows, status {result.status}; "
    if scored:
        summary += f"mean |rel err| {100 * report['mean_abs_rel_error']:.2f}%, coverage {report['coverage']:.0%}"
    else:
        summary += "no row could be forecast"
    if refused:
        with_all = report["mean_abs_rel_error_with_not_forecastable"]
        summary += (f"; {len(refused)} of {len(out_rows)} rows not forecastable (excluded"
                    + (f"; with their unsupported points the mean |rel err| would be {100 * with_all:.2f}%)"
                       if with_all is not None else ")"))
    print(summary)
    for w in result.warnings:
        print(f"warning: {w}")
    return exit_code(result.status, allow_unconverged)


def main(argv: list[str]) -> int:
    return int(function_cli(backtest, argv, prog="augury backtest") or 0)
