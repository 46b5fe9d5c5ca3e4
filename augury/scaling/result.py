"""`fit_law`: the public entry point that fits a law to a table and returns a `FitResult`.

A FitResult holds the best full-data parameters, an explicit convergence status, bootstrap parameter draws
(resampling runs), warnings when the data cannot support the request, and predicts with intervals. The rules its
forecasts are held to (how far out, how wide, how many resamples; what a refused record keeps) are limits.py's.

    from augury.scaling import fit_law
    res = fit_law("gpt4-loss", rows, bootstrap=1000, seed=0)        # rows: list of dicts or dict of arrays
    value, interval = res.predict({"flops": 1e24})                  # arrays (n,), (n, 2)
    res.to_json()                                                   # plain-JSON dict (what fit.json holds)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from augury.scaling.diagnostics import (
    check_identifiable,
    identifiability_warnings,
    improvement_verdict,
    trend_along,
    trend_check,
)
from augury.scaling.fitting import FitProblem, bootstrap_fits, fit_grid
from augury.scaling.laws import Law, Sigmoid, get_law
from augury.scaling.limits import (
    check_range,
    check_settings,
    extrapolation_refusal,
    extrapolation_warning,
    min_bootstrap,
    refuse,
    wide_interval,
)
from augury.scaling.tables import TableError, columns_from, law_inputs, numeric_column

# |corr| of log params and log tokens above this: every run at nearly one tokens/params ratio (their effects, and the
# compute-optimal trade-off between them, cannot be identified).
COLLINEAR_CORR = 0.98


@dataclass
class FitResult:
    """A fitted law. `theta` are the law's fitted parameters; `params` the formula's own (natural) ones."""

    law: Law
    theta: np.ndarray
    status: str  # "converged" or "not-converged"
    info: dict  # optimiser details: message, objective, n_starts, n_iter, seconds
    x: dict[str, np.ndarray]
    y: np.ndarray
    y_column: str
    names: list[str]
    delta: float
    level: float = 0.9
    seed: int = 0
    boot_theta: np.ndarray | None = None  # (B, P) converged bootstrap fits
    boot_info: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    trend: dict = field(default_factory=dict)
    noise: bool = True  # prediction intervals include run-to-run scatter (see add_scatter)
    anchors: np.ndarray | None = None  # rows that are not runs (e.g. a fixed anchor point): no scatter from them
    # a capability law's exponent k must lie measurably above 0 (forecastability); off for a difficulty bucket of
    # fit_capability, whose exponents are judged together (CapabilityResult.forecastability)
    judge_exponent: bool = True

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    @property
    def params(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.law.natural(self.theta).items()}

    def param_intervals(self) -> dict[str, list[float]]:
        """Percentile bootstrap interval (at `level`) of each natural parameter; empty without bootstrap."""
        if self.boot_theta is None or len(self.boot_theta) == 0:
            return {}
        q = [(1 - self.level) / 2 * 100, (1 + self.level) / 2 * 100]
        return {k: [float(v) for v in np.percentile(arr, q)] for k, arr in self.law.natural(self.boot_theta).items()}

    def correlations(self) -> dict[str, float]:
        """Bootstrap correlation of each pair of natural parameters."""
        if self.boot_theta is None or len(self.boot_theta) < 3:
            return {}
        nat = self.law.natural(self.boot_theta)
        keys, out = list(nat), {}
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                with np.errstate(invalid="ignore", divide="ignore"):
                    c = np.corrcoef(nat[a], nat[b])[0, 1]
                out[f"{a}~{b}"] = float(c) if np.isfinite(c) else float("nan")
        return out

    def residuals(self) -> np.ndarray:
        """Log residuals log(prediction) - log(observed) of the fitted rows."""
        return self.law.log_predict(self.theta, self.x)[0] - np.log(self.y)

    def _inputs(self, inputs) -> dict[str, np.ndarray]:
        rows = [inputs] if isinstance(inputs, dict) and np.ndim(next(iter(inputs.values()))) == 0 else inputs
        cols = columns_from(rows)
        return law_inputs(self.law, cols, where="prediction inputs")

    def predict(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        """Predicted values (n,) and intervals (n, 2) at `level` for inputs (a dict of scalars or arrays, or a
        list of dicts). Intervals are NaN without bootstrap."""
        x = self._inputs(inputs)
        value = self.law.predict(self.theta, x)[0]
        if self.boot_theta is None or len(self.boot_theta) == 0:
            return value, np.full((len(value), 2), np.nan)
        draws = self.law.predict(self.boot_theta, x)
        if self.noise:
            draws = self.add_scatter(draws, np.random.default_rng(self.seed + 1))
        q = [(1 - self.level) / 2 * 100, (1 + self.level) / 2 * 100]
        return value, np.percentile(draws, q, axis=0).T

    def add_scatter(self, draws: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Predicted draws of this law with run-to-run scatter added, every draw (and so an interval) inside the
        metric's range: on a positive quantity (a loss) the scatter multiplies (it is added in log space); on an
        accuracy it is added to the accuracy itself and a draw outside [floor, 1] (floor: 0, or the chance level)
        is drawn again.

        The scatter of each draw is s·T, T a Student t variate with n − P degrees of freedom and
        s² = Σ r² / (n − P) over the n runs' residuals r of the full-data fit (P free parameters): with the
        parameter draws, the textbook prediction interval t(n−P)·s·√(1 + leverage) for normal scatter. Drawing a
        residual itself instead undercovered a new run (90% intervals: 75-80% on 5-8 runs): the fit bends towards
        its runs (about P residuals are exactly 0 with a small Huber delta, a near least-absolute-deviations fit),
        and a handful of residuals has no tail beyond its own largest one."""
        runs = np.ones(len(self.y), bool) if self.anchors is None else ~self.anchors
        lo, hi = self.law.value_range
        # An accuracy's run-to-run scatter (evaluation noise on a fixed question set, seed to seed) is about as
        # large near the ceiling as in the middle of the range. Added in logit space instead, a scatter measured
        # on rungs in the middle shrinks towards 1: 90% intervals one decade beyond 8 rungs covered a new run with
        # 1% absolute noise 70% of the time (88% on the accuracy scale). Residuals are on the accuracy too, so a
        # run at chance whose noise put it below chance is an ordinary residual, not an infinite logit.
        bounded = np.isfinite(hi)
        resid = ((self.law.predict(self.theta, self.x)[0] - self.y) if bounded else self.residuals())[runs]
        dof = max(len(resid) - self.law.n_free, 1)  # fit_law keeps n > P
        scale = math.sqrt(float(np.sum(resid ** 2)) / dof)
        if not bounded:
            return draws * np.exp(scale * rng.standard_t(dof, size=np.shape(draws)))
        return _truncated_scatter(draws, scale, dof, lo, hi, rng)

    def forecastability(self) -> tuple[str, str]:
        """("ok" | "not-forecastable" | "degenerate", reason) for the fit as a whole.

        A rising metric (accuracy, with a sigmoid) is not forecastable when the rungs show no measurable trend
        (slope t <= 2: emergence from chance cannot be extrapolated from rungs that are all at chance) or when
        the fit sits on a bound of its shape parameters. A loss law with a parameter at its bound is degenerate:
        the data cannot identify it, and `alternatives` says what the forecast would be without it. A capability
        law (−log pass rate against compute) is not forecastable when its exponent k is not measurably above 0
        (`improvement_verdict`, the rule `augury forecast` applies to its difficulty buckets).
        """
        if self.law.name == "capability" and self.judge_exponent:
            verdict = improvement_verdict([self.param_intervals().get("k")], self.level)
            if verdict[0] != "ok":
                return verdict
        at_bound = self._params_at_bound()
        if self.law.higher_is_better or np.isfinite(self.law.value_range[1]):
            if self.trend.get("shape") in ("flat", "insufficient"):
                return ("not-forecastable",
                        f"the fitted rows show no measurable trend with scale ({self.trend['detail']})")
            shape = [n for n in at_bound if n in ("x0", "k")]
            if shape:
                return ("not-forecastable",
                        f"the fit sits on a bound of {', '.join(shape)}: the rows do not locate the rise")
            return "ok", ""
        if at_bound:
            return "degenerate", f"{', '.join(at_bound)} at a bound: the rows cannot identify it"
        return "ok", ""

    def too_few_resamples(self) -> str:
        """Why the interval cannot be given, when fewer bootstrap resamples converged than the level needs (one
        beyond each end: a percentile interval from fewer is the extreme draws, whatever the level); "" when
        enough did, or when no bootstrap was asked for (no interval is claimed then)."""
        asked = self.boot_info.get("resamples", 0)
        got = 0 if self.boot_theta is None else len(self.boot_theta)
        need = min_bootstrap(self.level)
        if asked and got < need:
            return (f"only {got} of {asked} bootstrap resamples converged; a {100 * self.level:g}% interval needs "
                    f"at least {need}")
        return ""

    def _params_at_bound(self) -> list[str]:
        lo, hi = np.array(self.law.bounds).T
        return [n for n, v, a, b in zip(self.law.param_names, self.theta, lo, hi)
                if a < b and (np.isclose(v, a) or np.isclose(v, b))]

    def extrapolation_decades(self, inputs) -> np.ndarray:
        """How many decades beyond the fitted data each prediction lies (max over the law's log inputs)."""
        x = self._inputs(inputs)
        out = np.zeros(len(next(iter(x.values()))))
        for col in self.law.inputs:
            if col in self.law.raw_inputs:
                continue
            data = np.log10(self.x[col])
            v = np.log10(np.asarray(x[col], float))
            out = np.maximum(out, np.maximum(v - data.max(), data.min() - v))
        return out

    def forecast(self, inputs, actual=None) -> list[dict]:
        """Predictions as records (what fit.json's `predictions` holds), with an extrapolation warning.

        Each record has a `status`: "ok"; "not-forecastable" (with `reason`; `value` and `interval` are None and
        the point the fit would have given is kept as `unsupported_value` for backtest accounting); or
        "degenerate" (a loss fit the data cannot identify; `alternatives` gives the forecasts it cannot rule
        out).
        """
        x = self._inputs(inputs)
        with np.errstate(over="ignore", invalid="ignore"):  # a refused far point may overflow; it is not shown
            value, interval = self.predict(x)
        decades = self.extrapolation_decades(x)
        fit_status, fit_reason = self.forecastability()
        too_few = self.too_few_resamples()
        alternatives = self.alternatives(x) if fit_status == "degenerate" else None
        records = []
        for i in range(len(value)):
            rec = {"inputs": {k: float(v[i]) for k, v in x.items()}, "status": fit_status, "value": float(value[i]),
                   "interval": [float(interval[i, 0]), float(interval[i, 1])],
                   "extrapolation_decades": round(float(decades[i]), 3)}
            too_wide = wide_interval(interval[i], self.level, self.law.value_range)
            too_far = extrapolation_refusal(decades[i])
            if too_far:
                rec["status"], rec["reason"] = "not-forecastable", too_far
            elif too_few:
                rec["status"], rec["reason"] = "not-forecastable", too_few
            elif fit_status == "ok" and too_wide:
                rec["status"], rec["reason"] = "not-forecastable", too_wide
            elif fit_status != "ok":
                rec["reason"] = fit_reason
            if alternatives is not None and not too_far:
                rec["alternatives"] = {name: vals[i] for name, vals in alternatives.items()}
            if not too_far and extrapolation_warning(decades[i]):
                rec["warning"] = extrapolation_warning(decades[i])
            if actual is not None and actual[i] is not None:
                rec["actual"] = float(actual[i])
                rec["rel_error"] = float(value[i] / actual[i] - 1.0)
                rec["covered"] = bool(interval[i, 0] <= actual[i] <= interval[i, 1])
            if rec["status"] == "not-forecastable":
                refuse(rec, rec["reason"])
            records.append(rec)
        return records

    def alternatives(self, x: dict[str, np.ndarray]) -> dict[str, list[float]]:
        """Forecasts of laws the data cannot rule out against this degenerate one (loss laws): a pure power law
        (irreducible loss 0) refitted on the same rows."""
        if self.law.name not in ("gpt4-loss",):
            return {}
        data = {**{k: v for k, v in self.x.items()}, self.y_column: self.y}
        pure = fit_law("power-loss", data, y=self.y_column, bootstrap=0)
        return {"power-loss (c = 0)": [float(v) for v in pure.law.predict(pure.theta, x)[0]]}

    def to_json(self) -> dict:
        intervals = self.param_intervals()
        return {
            "law": self.law.name, "formula": self.law.formula, "y": self.y_column, "status": self.status,
            "parameters": {k: {"value": v, "interval": intervals.get(k)} for k, v in self.params.items()},
            "fitted_parameters": dict(zip(self.law.param_names, map(float, self.theta))),
            "level": self.level, "n_points": len(self.y),
            "diagnostics": {"optimizer": self.info, "huber_delta": self.delta, "bootstrap": self.boot_info,
                            "correlations": self.correlations(),
                            "residual_rms": float(np.sqrt(np.mean(self.residuals() ** 2)))},
            "trend": self.trend, "warnings": list(self.warnings),
            "forecastability": dict(zip(("status", "reason"), self.forecastability())),
            # an unbounded end is null: JSON has no infinity (and a forecast's sha256 is taken over its JSON)
            "value_range": [float(v) if np.isfinite(v) else None for v in self.law.value_range],
            "data": {"names": self.names, "y": self.y.tolist(), **{k: v.tolist() for k, v in self.x.items()}},
        }


def fit_law(law: str | Law, data, y: str | None = None, *, x_column: str | None = None, weights=None,
            groups=None, delta: float = 1e-3, bootstrap: int = 1000, seed: int = 0, level: float = 0.9,
            max_iter: int = 2000, noise: bool = True, always_include=None, chance: float | None = None) -> FitResult:
    """Fit `law` to `data` (a list of row dicts or a dict of columns) and bootstrap it over runs.

    Args:
        law: a law name (see augury.scaling.laws.LAWS) or a Law object.
        data: rows ({column: value}) or columns ({column: array}); flops = 6*params*tokens when missing.
        y: the target column (default: the law's default, e.g. `loss`).
        x_column: input column of one-input laws (`sigmoid`, `kaplan-*`).
        weights: optional per-row weights multiplying each row's Huber term.
        groups: optional per-row run labels; the bootstrap resamples whole groups (default: each row).
        delta: Huber delta on log residuals.
        bootstrap: number of resamples (0: no intervals).
        seed: seed of the resampling.
        level: interval coverage (0.9 -> 5th..95th percentiles).
        max_iter: L-BFGS-B iteration limit of the final fit.
        noise: prediction intervals include run-to-run scatter, not only parameter uncertainty.
        always_include: optional per-row booleans: rows that are not runs (e.g. a fixed anchor point) and are
            kept once in every bootstrap resample instead of being resampled.
        chance: (sigmoid) the task's chance level: the fitted floor cannot go below it, and intervals stay in
            [chance, 1].
    """
    check_settings(bootstrap, level, delta, max_iter=max_iter)
    law = get_law(law, x_column)
    if chance is not None:
        if not isinstance(law, Sigmoid):
            raise TableError(f"chance applies to the sigmoid law, not {law.name!r}")
        law = dataclasses.replace(law, floor=float(chance))
    cols = columns_from(data)
    y_col = y or law.default_y
    x = law_inputs(law, cols, where="table")
    if y_col not in cols:
        raise TableError(f"table has no column {y_col!r} (the value to fit; pass y=...); columns: {sorted(cols)}")
    y_arr = numeric_column(cols, y_col, "table")
    check_range(law, cols, y_col, y_arr, "table")
    n = len(y_arr)
    check_identifiable(law, x, n if always_include is None else n - int(np.sum(always_include)))
    # one run listed twice (a table pasted together): the bootstrap would take it for two runs and narrow the
    # intervals as if there were more data; replicates have their own names or their own results (without a name
    # column, their own results: nothing else tells a repeated row from a run)
    named = "name" in cols
    seen: dict[tuple, int] = {}
    for i, key in enumerate(zip(map(str, cols["name"]) if named else [""] * n, y_arr, *x.values())):
        if key in seen:
            which = f"name {key[0]!r}, the same inputs and {y_col}" if named else f"the same inputs and {y_col}"
            fix = ("remove one (a replicate needs its own name)" if named else "remove one, or, if they are two "
                   "runs, name them: there is no 'name' column to tell a replicate from a repeated row")
            raise TableError(f"table: rows {seen[key] + 1} and {i + 1} are the same run ({which}): a run counted twice "
                             f"narrows the intervals as if it were two; {fix}")
        seen[key] = i
    logs = [np.log(v) for c, v in x.items() if c not in law.raw_inputs]
    collinear = len(logs) == 2 and abs(np.corrcoef(logs[0], logs[1])[0, 1]) > COLLINEAR_CORR
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    names = [str(v) for v in cols["name"]] if "name" in cols else [f"row{i + 1}" for i in range(n)]
    problem = FitProblem(law, x, y_arr, w, delta)
    theta, info = fit_grid(problem, max_iter=max_iter)
    result = FitResult(law, theta, info["status"], info, x, y_arr, y_col, names, delta, level, seed, noise=noise,
                       anchors=None if always_include is None else np.asarray(always_include, bool))
    if collinear:
        a, b = (c for c in x if c not in law.raw_inputs)
        result.warnings.append(f"{a} and {b} move together in the data (|corr of logs| > 0.98): their separate "
                               f"effects cannot be identified; vary the {b}/{a} ratio across runs")
    if info["status"] != "converged":
        result.warnings.append(f"fit did not converge: {info['message']}")
    lo, hi = np.array(law.bounds).T
    for name, v, a, b in zip(law.param_names, theta, lo, hi):
        if a < b and (np.isclose(v, a) or np.isclose(v, b)):
            result.warnings.append(f"parameter {name}={v:g} is at its bound [{a:g}, {b:g}]")
    if bootstrap > 0:
        run_groups = np.asarray(groups) if groups is not None else np.arange(n)
        always = None if always_include is None else np.asarray(always_include, bool)
        boot = bootstrap_fits(problem, theta, run_groups, bootstrap, seed, always=always)
        result.boot_theta = boot.theta[boot.converged]
        frac = float(boot.converged.mean())
        result.boot_info = {"resamples": int(bootstrap), "converged_fraction": frac, "seed": seed,
                            "unit": "group" if groups is not None else "row",
                            "n_groups": int(np.unique(run_groups if always is None else run_groups[~always]).size)}
        if frac < 0.99:
            result.warnings.append(f"only {frac:.1%} of bootstrap resamples converged; intervals use those")
        result.warnings += identifiability_warnings(law, result.correlations())
    if all(c in law.raw_inputs for c in law.inputs):
        # e.g. accuracy against task loss: "scale" is compute, not the law's input; without a compute column, the
        # input itself (a task loss falls as scale grows): a task at chance shows no trend along either
        if "flops" in cols:
            result.trend = trend_check({"flops": np.asarray(cols["flops"], float)}, y_arr, get_law("sigmoid"))
        else:
            col = law.inputs[0]
            result.trend = trend_along(col, x[col], y_arr, law.higher_is_better)
    else:
        result.trend = trend_check(x, y_arr, law)
    if result.trend.get("shape") in ("inverse", "u-shaped"):
        result.warnings.append(f"{y_col} shows {result.trend['shape']} scaling: {result.trend['detail']}")
    return result


def _truncated_scatter(draws: np.ndarray, scale: float, dof: int, lo: float, hi: float,
                       rng: np.random.Generator) -> np.ndarray:
    """draws + scale·T, T a Student t variate drawn again while the sum lies outside [lo, hi] (sampled at once
    from T truncated to [(lo − draw)/scale, (hi − draw)/scale] by its inverse CDF: the same distribution)."""
    centre = np.clip(draws, lo, hi)  # the law's parametrisation keeps them inside; clip only rounding
    if scale == 0.0:
        return centre
    t = stats.t(dof)
    a, b = t.cdf((lo - centre) / scale), t.cdf((hi - centre) / scale)  # a <= 0.5 <= b: never an empty window
    u = a + (b - a) * rng.random(np.shape(centre))
    return np.clip(centre + scale * t.ppf(u), lo, hi)  # the clip only catches ppf rounding at the ends
