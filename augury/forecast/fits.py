"""The fits a forecast registers: the loss law on the rungs with its predictability checks (`fit_loss`), and the
GPT-4 report's capability protocol (`fit_capability_forecast`). Only the rungs' own results feed them.

    loss, fit = fit_loss(rows, target_compute, cfg.fit, cfg.seed, x="compute")     # a LossForecast
    fold, fit = fit_capability_forecast(records, rung_compute, target_compute, cfg.capability, cfg.fit, cfg.seed)

Checks (each failure becomes a `flags` entry and `reliable: false`, never a silent number):
  - the fit converged and its parameters are not at their bounds (the scaling engine's warnings);
  - loss falls with compute from rung to rung;
  - no rung lies off the fitted curve by more than `fit.residual_tolerance` (relative);
  - the local slope d log L / d log C never steepens by more than `fit.steepening_tolerance` from one rung pair
    to the next (L = a·C^b + c only flattens: a steepening curve is a regime change);
  - leave-largest-out backtest: the law fitted without the largest rung predicts it within
    `fit.backtest_tolerance`, inside its interval;
  - saturation (laws with an irreducible term c): c may not exceed `fit.max_irreducible_fraction` of the largest
    rung's loss; above it the law says the ladder is at its floor, which the ladder cannot know (a ladder that
    flattens early, e.g. on a plateau the target will leave, looks like this);
  - for `power-loss` (no c): the local slope may not flatten by more than `fit.steepening_tolerance` either (an
    irreducible loss starting to matter, which a pure power law cannot follow);
  - the forecast's interval is no wider than ±`fit.max_interval_halfwidth`.
The prediction of the other law of the pair (gpt4-loss <-> power-loss) on the same rungs is recorded beside it.
"""

from __future__ import annotations

import math

import numpy as np

from augury.forecast.records import CapabilityBucket, CapabilityFold, LossForecast


def fit_compute(run, how: str) -> float:
    """A run's compute on the laws' x axis (`fit.compute`): its training FLOPs, or Kaplan's non-embedding compute
    6·N·D with N the parameters outside the embedding and output layers. `run` is a RunPlan or its row."""
    get = run.get if isinstance(run, dict) else lambda k: getattr(run, k)
    if how == "flops":
        return float(get("flops"))
    if how == "non-embedding":
        return 6.0 * float(get("params_non_embedding")) * float(get("tokens"))
    raise ValueError(f"fit.compute must be 'flops' or 'non-embedding', got {how!r}")


COMPUTE_DEFINITIONS = {
    "flops": "C = flops_per_token(model, seq_len) * training tokens (6 * N_matmul + attention term per token)",
    "non-embedding": "C = 6 * N * D with N the non-embedding parameters (Kaplan et al. 2020; embedding and output "
                     "layers excluded) and D the training tokens",
}


def prediction_interval(res, rows: list[dict], x: str, y: str, target_x: float, level: float,
                        replicates: int = 1) -> list[float]:
    """The regression prediction interval of one new run at `target_x` under a pure power law (a straight line
    in log-log): every seed replicate of every rung is one point, s² their squared log residuals about the fitted
    line over N − 2, and the interval exp(±t·s·√(1/m + 1/N + (u₀ − ū)²/Σ(u − ū)²)) around the forecast (u = log C,
    t the two-sided Student quantile with N − 2 degrees of freedom, m = `replicates`: 1 for one target run, the
    rung's seed count when predicting a rung's mean). With a handful of rungs, resampling them (the bootstrap)
    gives degenerate resamples and erratic intervals; this one is exact for normal scatter about the line, and
    the scatter it measures is the rungs' seed noise plus any lack of fit, with the target's own seed noise
    included through the 1/m term."""
    from scipy import stats

    u, logy = [], []
    for r in rows:
        for v in r.get("seed_losses") or [r[y]]:
            u.append(math.log(r[x]))
            logy.append(math.log(v))
    u, logy = np.array(u), np.array(logy)
    n = len(u)
    if n < 3:
        raise ValueError(f"a prediction interval needs at least 3 runs, got {n}")
    fitted = np.log(res.law.predict(res.theta, {"flops": np.exp(u)})[0])
    s = math.sqrt(float(np.sum((logy - fitted) ** 2)) / (n - 2))
    u0 = math.log(target_x)
    se = s * math.sqrt(1 / replicates + 1 / n + (u0 - u.mean()) ** 2 / float(np.sum((u - u.mean()) ** 2)))
    return _around_forecast(res, target_x, float(stats.t.ppf(0.5 + level / 2, n - 2)) * se)


def random_effects_interval(res, rows: list[dict], x: str, y: str, target_x: float, level: float,
                            replicates: int = 1) -> list[float]:
    """The prediction interval of one new run at `target_x` when each rung deviates from the line by its own
    amount: log L_rj = a + b·u_r + η_r + ε_rj, η_r ~ N(0, τ²) per rung (the lack of fit) and ε_rj ~ N(0, σ²) per
    seed. σ² is the within-rung scatter of the seed replicates (pure error), τ² what the rung means' scatter
    about the line adds beyond σ²/k (method of moments, floored at 0). The target, a new rung, has its own η and
    ε: Var = (τ² + σ²/k)·(1/R + (u₀ − ū)²/Σ(u_r − ū)²) + τ² + σ²/m, with Satterthwaite's degrees of freedom for
    the two mean squares (R − 2 for the lack of fit, Σ(k_r − 1) for the pure error). The regression interval
    (`prediction_interval`) takes every replicate as independent; when rung means sit off the line by more than
    their seeds explain, it is too narrow."""
    from scipy import stats

    u = np.array([math.log(r[x]) for r in rows])
    reps = [np.log(np.array(r.get("seed_losses") or [r[y]], float)) for r in rows]
    ks = np.array([len(v) for v in reps], float)
    n_rungs = len(rows)
    dof_pure = int(np.sum(ks - 1))
    if n_rungs < 3 or dof_pure < 1:
        raise ValueError(f"a random-effects interval needs at least 3 rungs and 2 seeds of one, got {n_rungs} rungs "
                         f"and {int(ks.sum())} runs")
    means = np.array([v.mean() for v in reps])
    fitted = np.log(res.law.predict(res.theta, {"flops": np.exp(u)})[0])
    ms_pure = float(sum(np.sum((v - v.mean()) ** 2) for v in reps)) / dof_pure
    k = float(len(ks) / np.sum(1 / ks))  # harmonic mean of the seeds per rung
    ms_means = float(np.sum((means - fitted) ** 2)) / (n_rungs - 2)  # estimates τ² + σ²/k
    tau2 = max(0.0, ms_means - ms_pure / k)
    u0 = math.log(target_x)
    lev = 1 / n_rungs + (u0 - u.mean()) ** 2 / float(np.sum((u - u.mean()) ** 2))
    var = (tau2 + ms_pure / k) * lev + tau2 + ms_pure / replicates
    if tau2 > 0:  # var = c_m·ms_means + c_p·ms_pure with ms_means ~ (R−2) dof and ms_pure ~ Σ(k−1) dof
        c_m, c_p = lev + 1, 1 / replicates - 1 / k
        parts = [(c_m * ms_means, n_rungs - 2), (c_p * ms_pure, dof_pure)]
        dof = var ** 2 / sum(p ** 2 / d for p, d in parts if p)
    else:
        dof = dof_pure + n_rungs - 2
    return _around_forecast(res, target_x, float(stats.t.ppf(0.5 + level / 2, dof)) * math.sqrt(var))


def _around_forecast(res, target_x: float, half: float) -> list[float]:
    """[forecast·e^(−half), forecast·e^(+half)]: an interval symmetric in log loss around the law's prediction."""
    center = float(res.law.predict(res.theta, {"flops": np.array([target_x])})[0][0])
    return [center * math.exp(-half), center * math.exp(half)]


def _interval(fit_cfg, res, rows, x, y, target_x, replicates=1) -> list[float]:
    how = random_effects_interval if fit_cfg.interval == "random-effects" else prediction_interval
    return how(res, rows, x, y, float(target_x), fit_cfg.level, replicates=replicates)


def fit_loss(rows: list[dict], target_x: float, fit_cfg, seed: int, y: str = "loss",
             x: str = "flops") -> tuple[LossForecast, object]:
    """Fit the loss law on the rung rows (compute in the rows' `x` field), predict the target at `target_x`, run
    the predictability checks."""
    from augury.scaling import TableError, fit_law
    from augury.scaling.limits import min_bootstrap

    rows = sorted(rows, key=lambda r: r[x])
    # the scaling engine's laws name their compute variable "flops", whatever the definition
    data = {"name": [r["name"] for r in rows], "flops": [r[x] for r in rows], y: [r[y] for r in rows]}
    res = fit_law(fit_cfg.law, data, y=y, bootstrap=fit_cfg.bootstrap, seed=seed, level=fit_cfg.level,
                  delta=fit_cfg.huber_delta)
    rec = res.forecast({"flops": float(target_x)})[0]
    if rec["value"] is None:  # plan_runs keeps the target within reach; a ladder given by hand may not be
        raise TableError(f"the target cannot be forecast from these rungs: {rec['reason']}")
    if fit_cfg.interval != "bootstrap":
        rec["interval"] = _interval(fit_cfg, res, rows, x, y, target_x)
    flags = [f"fit: {w}" for w in res.warnings]
    if not res.converged:
        flags.append("the loss fit did not converge")
    losses = np.array(data[y], float)
    flops = np.array(data["flops"], float)
    for i in range(1, len(rows)):
        if losses[i] >= losses[i - 1]:
            flags.append(f"{rows[i]['name']} (compute {flops[i]:.3g}) has a loss {losses[i]:.4f} not below "
                         f"{rows[i - 1]['name']}'s {losses[i - 1]:.4f}: the ladder is not improving with compute")
    fitted = res.law.predict(res.theta, {"flops": flops})[0]
    residuals = losses / fitted - 1
    worst = int(np.argmax(np.abs(residuals)))
    if abs(residuals[worst]) > fit_cfg.residual_tolerance:
        flags.append(f"{rows[worst]['name']} lies {residuals[worst]:+.2%} off the fitted curve (tolerance "
                     f"±{fit_cfg.residual_tolerance:.1%}): a rung off the curve")
    slopes = np.diff(np.log(losses)) / np.diff(np.log(flops))
    pure = "c" not in res.params  # power-loss: no irreducible term, a straight line in log-log
    for i in range(1, len(slopes)):
        if slopes[i] < slopes[i - 1] - fit_cfg.steepening_tolerance:
            flags.append(f"the curve steepens between {rows[i]['name']} and {rows[i + 1]['name']} (local slope "
                         f"{slopes[i - 1]:.3f} -> {slopes[i]:.3f}): a regime change, which {res.law.formula} "
                         f"cannot follow")
        elif pure and slopes[i] > slopes[i - 1] + fit_cfg.steepening_tolerance:
            flags.append(f"the curve flattens between {rows[i]['name']} and {rows[i + 1]['name']} (local slope "
                         f"{slopes[i - 1]:.3f} -> {slopes[i]:.3f}): an irreducible loss is starting to matter, "
                         f"which {res.law.formula} cannot follow")
    # law-form sensitivity: the other law of the pair (with / without the irreducible term) on the same rungs
    other = "gpt4-loss" if pure else "power-loss"
    sensitivity: dict = {"other_law": other}
    try:
        alt = fit_law(other, data, y=y, bootstrap=0, seed=seed, delta=fit_cfg.huber_delta)
        alt_pred = float(alt.law.predict(alt.theta, {"flops": np.array([float(target_x)])})[0][0])
        sensitivity.update(prediction=alt_pred, parameters=alt.params,
                           disagreement=float(rec["value"] / alt_pred - 1))
    except ValueError as err:  # e.g. too few rungs for three parameters
        sensitivity["error"] = str(err)
    if not pure:
        c_frac = res.params["c"] / float(losses[-1])
        sensitivity["irreducible_fraction_of_largest_rung"] = c_frac
        if c_frac > fit_cfg.max_irreducible_fraction:
            flags.append(f"the fit puts the irreducible loss c={res.params['c']:.4g} at {c_frac:.1%} of the largest "
                         f"rung's loss: it predicts almost no further gain although the ladder fell "
                         f"{losses[0] / losses[-1] - 1:.1%} over its span. The ladder has flattened (a plateau or a "
                         f"noise floor the target may leave); a pure power law through the rungs predicts "
                         f"{sensitivity.get('prediction', float('nan')):.4f} instead of {rec['value']:.4f}")
    lo, hi = rec["interval"]
    half = (hi - lo) / 2 / rec["value"]
    if half > fit_cfg.max_interval_halfwidth:
        flags.append(f"the {fit_cfg.level:.0%} interval [{lo:.4f}, {hi:.4f}] spans ±{half:.1%} of the forecast "
                     f"(> {fit_cfg.max_interval_halfwidth:.0%}): too wide to be a forecast")
    backtest = None
    if len(rows) < res.law.n_free + 2:
        flags.append(f"leave-largest-out backtest not run: without {rows[-1]['name']} {len(rows) - 1} rungs are "
                     f"left, too few for the law's {res.law.n_free} parameters and their scatter")
    else:
        sub = {k: v[:-1] for k, v in data.items()}
        try:
            # fewer resamples suffice for this check, but not fewer than an interval at the level needs
            resamples = max(min(fit_cfg.bootstrap, 300), min_bootstrap(fit_cfg.level))
            bt = fit_law(fit_cfg.law, sub, y=y, bootstrap=resamples, seed=seed + 7, level=fit_cfg.level,
                         delta=fit_cfg.huber_delta)
            btrec = bt.forecast({"flops": float(flops[-1])}, actual=[float(losses[-1])])[0]
            if btrec["value"] is None:  # refused (e.g. too few of its resamples converged): nothing to score
                flags.append(f"leave-largest-out backtest could not be scored: its forecast of {rows[-1]['name']} "
                             f"is not forecastable ({btrec['reason']})")
                btrec = None
            elif fit_cfg.interval != "bootstrap":
                lo, hi = _interval(fit_cfg, bt, rows[:-1], x, y, flops[-1],
                                   replicates=len(rows[-1].get("seed_losses") or [0]))
                btrec.update(interval=[lo, hi], covered=bool(lo <= losses[-1] <= hi))
            if btrec is not None:
                backtest = {"held_out": rows[-1]["name"], "predicted": btrec["value"], "actual": btrec["actual"],
                            "rel_error": btrec["rel_error"], "interval": btrec["interval"],
                            "covered": btrec["covered"], "status": bt.status}
            if btrec is not None and (abs(btrec["rel_error"]) > fit_cfg.backtest_tolerance or not btrec["covered"]):
                flags.append(f"leave-largest-out backtest: the law fitted without {rows[-1]['name']} predicts it "
                             f"with {btrec['rel_error']:+.2%} error (tolerance ±{fit_cfg.backtest_tolerance:.0%}), "
                             f"{'inside' if btrec['covered'] else 'outside'} its interval")
        except ValueError as err:
            flags.append(f"leave-largest-out backtest could not be fitted: {err}")
    out = LossForecast(
        predicted=rec["value"], interval=rec["interval"], level=fit_cfg.level, interval_method=fit_cfg.interval,
        extrapolation_decades=rec["extrapolation_decades"], law=res.to_json(),
        residuals={r["name"]: float(v) for r, v in zip(rows, residuals)}, local_slopes=[float(s) for s in slopes],
        backtest_largest_rung=backtest, law_form_sensitivity=sensitivity, flags=flags, reliable=not flags)
    if "warning" in rec:
        out.flag(rec["warning"])
    return out, res


def fit_capability_forecast(records: list[dict], run_flops: dict, target_flops: float, cap_cfg, fit_cfg,
                            seed: int, select_records: list[dict] | None = None) -> tuple[CapabilityFold, object]:
    """The GPT-4 report's capability protocol on the rungs' records; the target's predicted mean −log pass rate.
    `select_records` (independent samples) choose the kept problems when given (see fit_capability)."""
    from augury.scaling import TableError, fit_capability
    from augury.scaling.diagnostics import exponent_flat

    res = fit_capability(records, run_flops, n_buckets=cap_cfg.buckets, bootstrap=fit_cfg.bootstrap, seed=seed,
                         level=fit_cfg.level, select_records=select_records)
    preds = res.predict(target_flops, verdict=False)  # the exponents are judged across the folds (capability_status)
    refused = next((p for p in preds if p["value"] is None), None)
    if refused is not None:
        raise TableError(f"bucket {refused['bucket']}: {refused['reason']}")
    sizes = [len(b["problems"]) for b in res.buckets]
    mean = _bucket_weighted([p["value"] for p in preds], sizes)
    lo = _bucket_weighted([p["interval"][0] for p in preds], sizes)
    hi = _bucket_weighted([p["interval"][1] for p in preds], sizes)
    checks: list[tuple[str, str]] = []  # (kind, message): a cross-fitted forecast combines its folds' by kind
    by_run_problem = {(str(r["run"]), str(r["problem"])): r for r in records}
    k_intervals = []
    # the extrapolation leans on the largest rung: if even it solves most of a bucket's problems only once or
    # twice in n samples, the bucket's trend at the top is sampling noise (small rungs at the floor are expected
    # for the hardest bucket and carry little weight)
    top = max(res.runs, key=lambda run: run_flops[run])
    for b, p in zip(res.buckets, preds):
        fit = b["fit"]
        checks += [("fit", f"bucket {b['bucket']}: {w}") for w in fit.warnings]
        floor = float(np.mean([by_run_problem[(top, q)]["c"] <= 2 for q in b["problems"]]))
        if floor > 0.5:
            checks.append(("floor", f"bucket {b['bucket']}: the largest rung solves {floor:.0%} of its problems at "
                                    f"most twice in {by_run_problem[(top, b['problems'][0])]['n']} samples: its pass "
                                    f"rates are at the sampling floor (raise capability.samples or make the problems "
                                    f"easier)"))
        k_lo, k_hi = fit.param_intervals().get("k", [None, None])
        k_intervals.append([k_lo, k_hi])
        if exponent_flat([k_lo, k_hi]):
            checks.append((f"k:{b['bucket']}", f"bucket {b['bucket']}: the exponent k's {fit_cfg.level:.0%} interval "
                                              f"[{k_lo:.3g}, {k_hi:.3g}] does not lie above 0: no measurable "
                                              f"improvement with compute on the ladder"))
        if "warning" in p:
            checks.append(("fit", f"bucket {b['bucket']}: {p['warning']}"))
    if res.status != "converged":
        checks.append(("fit", "a capability fit did not converge"))
    backtest = _capability_backtest(records, run_flops, cap_cfg, fit_cfg, seed, select_records)
    if backtest is not None and "error" in backtest:
        checks.append(("fit", f"capability leave-largest-out backtest could not be fitted: {backtest['error']}"))
    elif backtest is not None and capability_backtest_misses(backtest, fit_cfg):
        checks.append(("backtest", capability_backtest_flag(backtest, fit_cfg)))
    flags = [msg for _, msg in checks]
    out = CapabilityFold(
        predicted=mean, interval=[lo, hi],
        buckets=[CapabilityBucket(bucket=b["bucket"], problems=b["problems"], n_problems=len(b["problems"]),
                                  small_run_pass_rate=b["small_run_pass_rate"], predicted=p["value"],
                                  interval=p["interval"], params=b["fit"].params, k_interval=k)
                 for b, p, k in zip(res.buckets, preds, k_intervals)],
        kept_problems=sum(sizes), dropped_problems=len(res.dropped_problems), backtest_largest_rung=backtest,
        flags=flags, reliable=not flags, flag_kinds=[kind for kind, _ in checks])
    return out, res


def capability_backtest_flag(backtest: dict, fit_cfg) -> str:
    if backtest["rel_error"] is None:
        return (f"capability leave-largest-out backtest: {backtest['held_out']} solves every kept problem in every "
                f"sample (actual mean -log pass rate 0; the laws fitted without it predict "
                f"{backtest['predicted']:.3g}): the relative error is undefined and the ladder's trend is not "
                f"confirmed one rung further")
    return (f"capability leave-largest-out backtest: the laws fitted without {backtest['held_out']} predict its mean "
            f"-log pass rate with {backtest['rel_error']:+.1%} error (tolerance "
            f"±{fit_cfg.capability_backtest_tolerance:.0%}): the ladder's trend does not carry one rung further")


def _capability_backtest(records, run_flops, cap_cfg, fit_cfg, seed, select_records) -> dict | None:
    """The capability protocol without the largest rung, predicting that rung's mean −log pass rate over the
    problems the smaller rungs keep (None with fewer than 4 rungs)."""
    from augury.forecast.capability import neg_log_pass_rate
    from augury.scaling import fit_capability

    runs = sorted({str(r["run"]) for r in records}, key=lambda r: run_flops[r])
    if len(runs) < 4:
        return None
    held = runs[-1]
    sub = [r for r in records if str(r["run"]) != held]
    sub_sel = [r for r in select_records if str(r["run"]) != held] if select_records else None
    try:
        res = fit_capability(sub, {r: run_flops[r] for r in runs[:-1]}, n_buckets=cap_cfg.buckets, bootstrap=0,
                             seed=seed, select_records=sub_sel)
    except ValueError as err:
        return {"held_out": held, "error": str(err)}
    preds = res.predict(run_flops[held])
    sizes = [len(b["problems"]) for b in res.buckets]
    predicted = _bucket_weighted([p["value"] for p in preds], sizes)
    kept = [q for b in res.buckets for q in b["problems"]]
    actual, _ = neg_log_pass_rate([r for r in records if str(r["run"]) == held], kept)
    return {"held_out": held, "predicted": predicted, "actual": actual, "rel_error": relative(predicted, actual)}


def _bucket_weighted(values: list[float], sizes: list[int]) -> float:
    """The mean over all kept problems of per-bucket values (each bucket weighted by its number of problems)."""
    return float(sum(v * n for v, n in zip(values, sizes)) / sum(sizes))


def relative(pred: float, actual: float) -> float | None:
    """pred / actual − 1; None when actual is 0 (a −log pass rate of a run that solves every problem it is scored
    on), where no relative error exists (JSON has no infinity either)."""
    return float(pred / actual - 1.0) if actual else None


def capability_backtest_misses(backtest: dict, fit_cfg) -> bool:
    """Whether a capability backtest ({predicted, actual, rel_error}) is outside the tolerance. An undefined
    relative error (the held-out rung solves every kept problem) counts as outside: it confirms no trend."""
    rel = backtest["rel_error"]
    return rel is None or abs(rel) > fit_cfg.capability_backtest_tolerance
