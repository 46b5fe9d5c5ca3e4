"""Checks that say when the data cannot support what was asked: trend shape and parameter identifiability.

`check_identifiable` refuses rows that cannot determine a law at all (no more rows than parameters, fewer
distinct sizes). `trend_check` flags inverse scaling (a metric that gets worse with scale) and U-shaped scaling
(worse, then better, or the reverse) - the Inverse Scaling Prize finding the GPT-4 report discusses (McKenzie et
al. 2023; Wei et al. 2022 "Inverse scaling can become U-shaped"). `identifiability_warnings` reports parameter pairs
the bootstrap cannot tell apart (e.g. Chinchilla's alpha and beta on a narrow ladder). `improvement_verdict` refuses
a capability forecast whose pass rates do not improve measurably with compute (`augury fit`, `augury backtest` and
`augury forecast` all decide by it).
"""

from __future__ import annotations

import numpy as np

from augury.scaling.tables import TableError

# |bootstrap correlation| above this between a law's exponents is reported as "cannot be told apart".
CORRELATION_WARN = 0.9
# Pairs of natural parameters whose correlation each law reports.
IDENTIFIABILITY_PAIRS = {"chinchilla": (("alpha", "beta"), ("A", "B"), ("E", "alpha"))}
# Column names that mean lower is better (losses); any other metric is taken as higher-is-better.
LOWER_IS_BETTER = ("loss", "bpb", "perplexity", "ppl", "_ce", "crossentropy", "error", "neg_log")


def lower_is_better(column: str) -> bool:
    name = column.lower()
    return any(tok in name for tok in LOWER_IS_BETTER)


def check_identifiable(law, x: dict[str, np.ndarray], n_runs: int) -> None:
    """TableError when the rows cannot determine the law's parameters and the scatter about it.

    With no more runs than free parameters the law passes through every run: the residuals are all zero, so
    the bootstrap intervals have no width, though nothing was measured. With fewer distinct sizes (input
    points) than parameters the curve between them is not determined at all, whatever the replicates."""
    p = law.n_free
    if n_runs <= p:
        raise TableError(f"{n_runs} rows but law {law.name!r} has {p} parameters: need at least {p + 1} (with no "
                         f"more rows than parameters the law passes through every row and leaves no scatter to "
                         f"measure its uncertainty by)")
    for col, arr in x.items():
        if np.unique(arr).size < 2:
            raise TableError(f"all rows have the same {col}={arr[0]:g}: a law in {col} cannot be fitted from one size")
    sizes = len(np.unique(np.stack([np.asarray(v, float) for v in x.values()], axis=1), axis=0))
    if sizes < p:
        what = "/".join(x)
        raise TableError(f"the rows have {sizes} distinct values of {what} but law {law.name!r} has {p} "
                         f"parameters: the curve between {sizes} sizes is not determined, however many runs each "
                         f"has; add runs at {p - sizes} more size{'s' if p - sizes > 1 else ''}")


def exponent_flat(k_interval) -> bool:
    """Whether a capability law's exponent k is not measurably above 0: the lower end of its interval is at or
    below 0 (the interval includes 0, or pass rates fall with compute; either is no improvement). False without an
    interval (no bootstrap: none is claimed)."""
    return bool(k_interval) and k_interval[0] is not None and k_interval[0] <= 0


def improvement_verdict(k_intervals: list, level: float, scope: str = "") -> tuple[str, str]:
    """("not-forecastable", reason) when none of a capability forecast's exponents k (one per difficulty bucket,
    and in `augury forecast` per cross-fitting fold; `scope` says which) lies measurably above 0: a capability
    that has not emerged on the runs cannot be extrapolated. ("ok", "") when one does, or when no interval was
    computed; a single flat bucket among rising ones is left to the caller to flag."""
    if not k_intervals or not all(exponent_flat(k) for k in k_intervals):
        return "ok", ""
    shown = f" [{k_intervals[0][0]:.3g}, {k_intervals[0][1]:.3g}]" if len(k_intervals) == 1 else ""
    return ("not-forecastable", f"the pass rate does not improve measurably with compute (the exponent k's "
                                f"{level:.0%} interval{shown} reaches 0 or below{scope})")


def identifiability_warnings(law, correlations: dict[str, float]) -> list[str]:
    out = []
    for a, b in IDENTIFIABILITY_PAIRS.get(law.name, ()):
        c = correlations.get(f"{a}~{b}", correlations.get(f"{b}~{a}"))
        if c is not None and np.isfinite(c) and abs(c) > CORRELATION_WARN:
            out.append(f"{a} and {b} are strongly correlated across bootstrap resamples (r={c:+.2f}): the data "
                       f"cannot tell them apart; trust predictions near the data more than the exponents")
    return out


def _slope_t(z: np.ndarray, y: np.ndarray) -> float:
    """t statistic of the least-squares slope of y on z."""
    slope, icpt = np.polyfit(z, y, 1)
    resid = slope * z + icpt - y
    sxx = ((z - z.mean()) ** 2).sum()
    se = np.sqrt((resid ** 2).sum() / max(z.size - 2, 1) / sxx) if sxx > 0 else 0.0
    return float(slope / se) if se > 0 else float(np.inf * np.sign(slope))


def trend_shape(log_x: np.ndarray, y: np.ndarray, higher_is_better: bool, unlog=lambda v: 10 ** v) -> dict:
    """Shape of y against log x: `normal`, `inverse`, `u-shaped`, `flat` or `insufficient`.

    Values at the same x are averaged. A quadratic in log x replaces the line when it explains the data
    clearly better (F test, p < 0.05) with its turning point inside the data: that is U-shaped (or inverted-U).
    Otherwise the slope's sign (|t| > 2) decides normal vs inverse; else flat. `unlog` maps the coordinate back to
    the x a turning point is reported at.
    """
    from scipy import stats

    ux = np.unique(log_x)
    if ux.size < 3:
        return {"shape": "insufficient", "detail": f"{ux.size} distinct sizes (need 3)"}
    uy = np.array([y[log_x == v].mean() for v in ux])
    sign = 1.0 if higher_is_better else -1.0
    z = (ux - ux.mean()) / (ux.std() or 1.0)
    lin = np.polyfit(z, uy, 1)
    sse1 = float(((np.polyval(lin, z) - uy) ** 2).sum())
    n = ux.size
    if n >= 4:
        quad = np.polyfit(z, uy, 2)
        sse2 = float(((np.polyval(quad, z) - uy) ** 2).sum())
        f_stat = (sse1 - sse2) / max(sse2 / (n - 3), 1e-300)
        p_quad = float(stats.f.sf(f_stat, 1, n - 3))
        vertex = -quad[1] / (2 * quad[0]) if quad[0] != 0 else np.inf
        left, right = z <= vertex, z >= vertex
        if p_quad < 0.05 and z.min() < vertex < z.max() and left.sum() >= 3 and right.sum() >= 3:
            # a real turn: significant opposite slopes on both sides, not just curvature of a saturating trend
            t_left, t_right = _slope_t(z[left], uy[left]), _slope_t(z[right], uy[right])
            if abs(t_left) > 2 and abs(t_right) > 2 and np.sign(t_left) != np.sign(t_right):
                at = float(unlog(vertex * (ux.std() or 1.0) + ux.mean()))
                kind = "worse then better" if t_left * sign < 0 else "better then worse"
                return {"shape": "u-shaped", "detail": f"{kind}, turning near x={at:.3g} (p={p_quad:.3g})"}
    t = _slope_t(z, uy)
    if abs(t) <= 2:
        return {"shape": "flat", "detail": f"no clear trend (t={t:.2f})"}
    return {"shape": "normal" if lin[0] * sign > 0 else "inverse",
            "detail": f"{'improves' if lin[0] * sign > 0 else 'worsens'} with scale (t={t:.2f})"}


def trend_check(x: dict[str, np.ndarray], y: np.ndarray, law) -> dict:
    """Trend of the fitted column against the law's main input (compute 6*params*tokens for (N, D) laws)."""
    if "params" in x and "tokens" in x:
        col, xv = "6*params*tokens", 6.0 * np.asarray(x["params"], float) * np.asarray(x["tokens"], float)
    else:
        col = law.inputs[0]
        xv = np.asarray(x[col], float)
    log_x = xv if col in law.raw_inputs else np.log10(xv)
    out = trend_shape(log_x, np.asarray(y, float), law.higher_is_better)
    return {"against": col, **out}


def trend_along(column: str, values: np.ndarray, y: np.ndarray, higher_is_better: bool) -> dict:
    """Trend of y along a raw input column when no compute is known (e.g. accuracy against task loss): scale grows
    as a lower-is-better column (a loss) falls, so such a column is read in reverse."""
    sign = -1.0 if lower_is_better(column) else 1.0
    out = trend_shape(sign * np.asarray(values, float), np.asarray(y, float), higher_is_better,
                      unlog=lambda v: sign * v)
    return {"against": column + (" (falling)" if sign < 0 else ""), **out}


def metric_trends(cols: dict[str, np.ndarray], against: np.ndarray, skip=()) -> dict[str, dict]:
    """Trend of every numeric metric column against log10(against) (e.g. flops), for the fit report."""
    out = {}
    log_x = np.log10(np.asarray(against, float))
    for name, arr in cols.items():
        if name in skip or arr.dtype == object:
            continue
        vals = np.asarray(arr, float)
        ok = np.isfinite(vals) & np.isfinite(log_x)
        if ok.sum() < 3:
            continue
        out[name] = trend_shape(log_x[ok], vals[ok], higher_is_better=not lower_is_better(name))
    return out
