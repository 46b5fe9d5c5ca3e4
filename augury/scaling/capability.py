"""Capability forecasts from per-problem pass rates, with the GPT-4 report's protocol (OpenAI 2023, Sec. 3.2).

Input: records {run, problem, n, c} (n samples, c passed) and each run's training compute. Protocol:
  1. pass_rate(run, problem) = c / n;
  2. keep only problems every run solves at least once (c > 0 everywhere), so log pass_rate is finite;
  3. bucket the kept problems by difficulty = their pass rate on the smallest-compute run(s) (quantile
     buckets, easiest first; ties broken by problem id);
  4. per bucket, y(run) = mean over its problems of -log pass_rate, and fit y = alpha * C^(-k)
     (law `capability`) with the bootstrap resampling runs;
  5. refuse the forecast (every bucket "not-forecastable") when no bucket's exponent k is measurably above 0
     (`improvement_verdict`): pass rates that do not improve with compute cannot be extrapolated.

    from augury.scaling.capability import fit_capability
    cap = fit_capability(records, {"s": 1e18, "m": 1e19, "l": 1e20}, n_buckets=3, bootstrap=1000)
    cap.predict(1e22)   # per bucket: value, interval
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from augury.scaling.diagnostics import improvement_verdict
from augury.scaling.limits import refuse
from augury.scaling.result import fit_law
from augury.scaling.tables import TableError, check_problems


@dataclass
class CapabilityResult:
    buckets: list[dict]  # per bucket: problems, difficulty range, fit (FitResult)
    dropped_problems: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "converged" if all(b["fit"].converged for b in self.buckets) else "not-converged"

    def forecastability(self) -> tuple[str, str]:
        """("not-forecastable", reason) when no difficulty bucket's exponent k is measurably above 0 (the rule
        `augury forecast` applies to its buckets); one flat bucket among rising ones is no refusal."""
        return improvement_verdict([b["fit"].param_intervals().get("k") for b in self.buckets],
                                   self.buckets[0]["fit"].level, " in every difficulty bucket")

    def predict(self, flops: float, verdict: bool = True) -> list[dict]:
        """Per bucket: predicted -E_P[log pass_rate] at `flops`, its interval, and the implied pass rate; a bucket
        refused (status "not-forecastable": every bucket when the fit as a whole is, see `forecastability`, or one
        too far out) has value and interval None, its `reason` and `unsupported_value`. `verdict` False leaves
        the fit's verdict out (`augury forecast` judges the exponents of all its cross-fitting folds at once)."""
        status, reason = self.forecastability() if verdict else ("ok", "")
        out = []
        for b in self.buckets:
            rec = b["fit"].forecast({"flops": float(flops)})[0]
            if status != "ok" and rec["status"] != "not-forecastable":
                refuse(rec, reason)
            out.append({"bucket": b["bucket"], "status": rec["status"], "value": rec["value"],
                        "interval": rec["interval"],
                        "pass_rate_geomean": None if rec["value"] is None else float(np.exp(-rec["value"])),
                        **{k: rec[k] for k in ("reason", "warning", "unsupported_value") if k in rec}})
        return out

    def to_json(self) -> dict:
        return {"law": "capability", "status": self.status, "runs": self.runs,
                "forecastability": dict(zip(("status", "reason"), self.forecastability())),
                "dropped_problems": self.dropped_problems,
                "buckets": [{k: (v.to_json() if k == "fit" else v) for k, v in b.items()} for b in self.buckets]}


def fit_capability(records: list[dict], run_flops: dict[str, float], n_buckets: int = 3, *,
                   small_runs: list[str] | None = None, bootstrap: int = 1000, seed: int = 0,
                   level: float = 0.9, select_records: list[dict] | None = None) -> CapabilityResult:
    """Fit one `capability` law per difficulty bucket (see the module docstring for the protocol).

    Args:
        records: {run, problem, n, c} per (run, problem).
        run_flops: training compute of every run named in the records.
        n_buckets: number of difficulty buckets.
        small_runs: runs whose pass rates define difficulty (default: the smallest-compute run).
        bootstrap, seed, level: as in fit_law.
        select_records: optional independent records of the same runs and problems (other samples) that decide
            which problems are kept and their difficulty, so that the pass rates the laws are fitted to are not
            the ones the selection looked at. Keeping "problems every run solved at least once" on the same
            samples favours lucky draws when pass rates are a few percent, and the target, measured without that
            selection, then falls short of the forecast. With it, a kept problem a run never solved in `records`
            counts at pass rate 1/(2n).
    """
    check_problems(records)
    if select_records is not None:
        check_problems(select_records, "select_records")
    runs = sorted({str(r["run"]) for r in records}, key=lambda r: run_flops.get(r, np.inf))
    missing = [r for r in runs if r not in run_flops]
    if missing:
        raise TableError(f"no compute given for run {missing[0]!r} (every run in the records needs flops)")
    for run in runs:
        c = run_flops[run]
        if isinstance(c, bool) or not isinstance(c, (int, float, np.number)) or not (np.isfinite(c) and c > 0):
            raise TableError(f"run {run!r}: compute {c!r} must be a finite number > 0 (its log is taken)")
    if len({run_flops[r] for r in runs}) < 2:
        raise TableError(f"every run in the records has the compute {run_flops[runs[0]]:g}: a law in compute cannot "
                         f"be fitted from one size")
    if len(runs) < 3:
        raise TableError(f"{len(runs)} runs in the records: need at least 3 to fit alpha * C^(-k) with intervals")
    problems = sorted({str(r["problem"]) for r in records})
    passed = np.zeros((len(runs), len(problems)))
    samples = np.zeros_like(passed)
    ri, pi = {r: i for i, r in enumerate(runs)}, {p: j for j, p in enumerate(problems)}
    for rec in records:
        i, j = ri[str(rec["run"])], pi[str(rec["problem"])]
        passed[i, j] += rec["c"]
        samples[i, j] += rec["n"]
    if (samples == 0).any():
        i, j = map(int, np.argwhere(samples == 0)[0])
        raise TableError(f"run {runs[i]!r} has no record for problem {problems[j]!r}: every run must try every problem")
    rate = passed / samples
    keep = (passed > 0).all(axis=0)
    if select_records is not None:
        sel_passed, sel_samples = np.zeros_like(passed), np.zeros_like(passed)
        for rec in select_records:
            i, j = ri[str(rec["run"])], pi[str(rec["problem"])]
            sel_passed[i, j] += rec["c"]
            sel_samples[i, j] += rec["n"]
        if (sel_samples == 0).any():
            raise TableError("select_records must cover every run and problem of the records")
        keep = (sel_passed > 0).all(axis=0)
        rate = np.maximum(rate, 1.0 / (2.0 * samples))
    dropped = [p for p, k in zip(problems, keep) if not k]
    if keep.sum() < n_buckets:
        raise TableError(f"only {int(keep.sum())} problems are solved at least once by every run: "
                         f"too few for {n_buckets} buckets")
    small = small_runs or [runs[0]]
    sel_rate = sel_passed / sel_samples if select_records is not None else rate
    difficulty = sel_rate[[ri[r] for r in small]][:, keep].mean(axis=0)
    kept_ids = [p for p, k in zip(problems, keep) if k]
    order = sorted(range(len(kept_ids)), key=lambda j: (-difficulty[j], kept_ids[j]))  # easiest first
    buckets = []
    flops = np.array([run_flops[r] for r in runs], float)
    for b, chunk in enumerate(np.array_split(np.array(order), n_buckets)):
        cols = np.flatnonzero(keep)[chunk]
        y = -np.log(rate[:, cols]).mean(axis=1)
        if not (y > 0).all():
            solved = [runs[i] for i in np.flatnonzero(y <= 0)]
            raise TableError(f"difficulty bucket {b}: run{'s' if len(solved) > 1 else ''} "
                             f"{', '.join(repr(r) for r in solved)} solved every sample of its "
                             f"{len(chunk)} problems (pass rate 1): -log pass_rate is 0 there, which alpha * C^(-k) "
                             f"never reaches; draw more samples per problem or use fewer buckets")
        try:
            fit = fit_law("capability", {"name": np.array(runs, dtype=object), "flops": flops,
                                         "neg_log_pass_rate": y}, bootstrap=bootstrap, seed=seed + b, level=level)
        except TableError as err:  # e.g. every run at one compute
            raise TableError(f"difficulty bucket {b}: {err}") from None
        fit.judge_exponent = False  # judged with the other buckets' (CapabilityResult.forecastability)
        buckets.append({"bucket": b, "problems": [kept_ids[j] for j in chunk],
                        "small_run_pass_rate": [float(difficulty[chunk].min()), float(difficulty[chunk].max())],
                        "fit": fit})
    return CapabilityResult(buckets, dropped, runs)
