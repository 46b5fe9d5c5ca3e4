"""The OLMo ladder's two-step task prediction (Bhagia et al. 2024, "Establishing Task Scaling Laws via
Compute-Efficient Model Ladders", Sec. 3): step 1 predicts a task's loss (bits per byte) from (N, D) with the
Chinchilla form; step 2 maps task loss to accuracy with a sigmoid. Intervals are propagated by pushing each
step-1 bootstrap draw through a step-2 bootstrap draw (the two are fitted on different data, so their
draws are paired independently).

    from augury.scaling.two_step import fit_two_step
    res = fit_two_step(final_rows, checkpoint_rows, loss="task_bpb", accuracy="task_acc", group="run")
    acc, interval, loss = res.predict({"params": 13e9, "tokens": 5e12})
    records = res.forecast({"params": 13e9, "tokens": 5e12})  # value None when step 2 is not forecastable

The ladder paper's step 2 (fitted ceiling, the anchor point (0, 1), least squares; augury's is on log accuracy,
the paper's on accuracy itself): pass
`fixed_ceiling=False, anchor=(0.0, 1.0), step2_delta=10.0`; augury.scaling.olmo.two_step_data prepares the OLMo
ladder's rows as the paper does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from augury.scaling.laws import Sigmoid
from augury.scaling.limits import extrapolation_refusal, extrapolation_warning, wide_interval
from augury.scaling.result import FitResult, fit_law
from augury.scaling.tables import TableError, columns_from, numeric_column


@dataclass
class TwoStepResult:
    """step1: task loss = chinchilla(params, tokens); step2: accuracy = sigmoid(task loss)."""

    step1: FitResult
    step2: FitResult
    level: float = 0.9
    seed: int = 0

    @property
    def status(self) -> str:
        return "converged" if self.step1.converged and self.step2.converged else "not-converged"

    def predict(self, inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(accuracy (n,), accuracy interval (n, 2), predicted task loss (n,)) at (params, tokens) inputs."""
        loss, _ = self.step1.predict(inputs)
        acc = self.step2.law.predict(self.step2.theta, {self.step2.law.column: loss})[0]
        b1, b2 = self.step1.boot_theta, self.step2.boot_theta
        if b1 is None or b2 is None or len(b1) == 0 or len(b2) == 0:
            return acc, np.full((len(acc), 2), np.nan), loss
        m = min(len(b1), len(b2))
        x = self.step1._inputs(inputs)
        loss_draws = self.step1.law.predict(b1[:m], x)  # (m, n)
        rng = np.random.default_rng(self.seed + 2)
        # each step's scatter in its own metric's space (log for the task loss; on the accuracy itself, drawn
        # again outside [floor, 1], for the accuracy): every draw, and so the interval, stays inside its range
        if self.step1.noise:
            loss_draws = self.step1.add_scatter(loss_draws, rng)
        acc_draws = np.stack([self.step2.law.predict(b2[i], {self.step2.law.column: loss_draws[i]})[0]
                              for i in range(m)])
        if self.step2.noise:
            acc_draws = self.step2.add_scatter(acc_draws, rng)
        q = [(1 - self.level) / 2 * 100, (1 + self.level) / 2 * 100]
        return acc, np.percentile(acc_draws, q, axis=0).T, loss

    def forecastability(self) -> tuple[str, str]:
        """("ok" | "not-forecastable" | "degenerate", reason): step 2's verdict first (see
        FitResult.forecastability; an accuracy that shows no trend with scale cannot be forecast, however well
        step 1 predicts the task loss), then step 1's (a task-loss fit the rows cannot identify flags every
        forecast that rests on it)."""
        status, reason = self.step2.forecastability()
        if status != "ok":
            return status, f"step 2: {reason}"
        status, reason = self.step1.forecastability()
        return ("ok", "") if status == "ok" else (status, f"step 1: {reason}")

    def forecast(self, inputs, actual=None) -> list[dict]:
        """Predictions as records (what fit.json's `predictions` holds): `inputs`, `status`, `value`, `interval`,
        `task_loss`. A not-forecastable one (step 2's verdict, fewer converged bootstrap resamples in either step
        than the level needs, or an interval spanning more than half the accuracy's range) has a `reason`, `value`
        and `interval` None, and the point as `unsupported_value`; a degenerate one (step 1 cannot be identified
        from the rows) keeps its value, with the `reason`. With
        `actual` (one observed accuracy per input, or None), `actual`, `rel_error` and `covered` as in
        FitResult.forecast."""
        with np.errstate(over="ignore", invalid="ignore"):  # a refused far point may overflow; it is not shown
            acc, interval, loss = self.predict(inputs)
        x = self.step1._inputs(inputs)
        decades = self.step1.extrapolation_decades(x)
        fit_status, fit_reason = self.forecastability()
        # the chain pairs the steps' draws, as many as the step with fewer has: either step's too few refuse it
        too_few = next((f"step {k}: {why}" for k, step in ((1, self.step1), (2, self.step2))
                        if (why := step.too_few_resamples())), "")
        records = []
        for i in range(len(acc)):
            rec = {"inputs": {k: float(v[i]) for k, v in x.items()}, "status": fit_status, "value": float(acc[i]),
                   "interval": [float(v) for v in interval[i]], "task_loss": float(loss[i]),
                   "extrapolation_decades": round(float(decades[i]), 3)}
            too_wide = wide_interval(interval[i], self.level, self.step2.law.value_range)
            too_far = extrapolation_refusal(decades[i])
            if extrapolation_warning(decades[i]) and not too_far:
                rec["warning"] = extrapolation_warning(decades[i])
            if actual is not None and actual[i] is not None:
                rec["actual"] = float(actual[i])
                rec["rel_error"] = float(acc[i] / actual[i] - 1.0)
                rec["covered"] = bool(interval[i, 0] <= actual[i] <= interval[i, 1])
            if fit_status == "not-forecastable" or too_wide or too_far or too_few:
                rec["status"] = "not-forecastable"
                rec["reason"] = too_far or too_few or (fit_reason if fit_status == "not-forecastable" else too_wide)
                rec["unsupported_value"] = rec["value"]
                rec["value"], rec["interval"] = None, None
                if "rel_error" in rec:
                    rec["unsupported_rel_error"] = rec.pop("rel_error")
                    rec["rel_error"], rec["covered"] = None, None
            elif fit_status == "degenerate":
                rec["reason"] = fit_reason  # a value, flagged: the rows cannot rule out other task losses
            records.append(rec)
        return records

    def to_json(self) -> dict:
        return {"law": "two-step", "status": self.status,
                "forecastability": dict(zip(("status", "reason"), self.forecastability())),
                "step1": self.step1.to_json(), "step2": self.step2.to_json()}


def fit_two_step(final_rows, checkpoint_rows, loss: str, accuracy: str, group: str | None = None, *,
                 fixed_ceiling: bool = True, anchor: tuple[float, float] | None = None, bootstrap: int = 1000,
                 seed: int = 0, level: float = 0.9, delta: float = 1e-3,
                 step2_delta: float | None = None) -> TwoStepResult:
    """Fit both steps.

    Args:
        final_rows: one row per run at its final (fully decayed) checkpoint: params, tokens, `loss`.
        checkpoint_rows: rows (any checkpoints) with `loss` and `accuracy`; step 2 does not depend on where a
            run's schedule is, so intermediate checkpoints are valid data for it.
        loss: the task-loss column (e.g. bits per byte).
        accuracy: the accuracy column.
        group: column naming the run of each checkpoint row: the step-2 bootstrap resamples whole runs.
        fixed_ceiling: the sigmoid's ceiling is 1 (see laws.Sigmoid); False fits it (bounded by 1).
        anchor: optional (task loss, accuracy) point added to step 2's data, e.g. (0, 1): a model that gives
            the correct answer probability 1 is always right. The OLMo ladder paper adds (0, task maximum 1)
            to every step-2 fit with a fitted ceiling. It is not a run: every bootstrap resample keeps it once.
        bootstrap, seed, level, delta: as in fit_law (delta: step 1's Huber delta).
        step2_delta: step 2's Huber delta on log residuals (default: `delta`). A large value (e.g. 10, far
            above any residual) makes step 2 least squares on log accuracy (the paper's step 2 is least
            squares on accuracy itself).
    """
    step1 = fit_law("chinchilla", final_rows, y=loss, bootstrap=bootstrap, seed=seed, level=level, delta=delta)
    cols = columns_from(checkpoint_rows)
    for col, what in ((loss, "the task loss"), (accuracy, "the accuracy")):
        if col not in cols:
            raise TableError(f"checkpoint rows have no column {col!r} ({what}); columns: {sorted(cols)}")
    x2 = numeric_column(cols, loss, "checkpoint rows", positive=False)
    y2 = numeric_column(cols, accuracy, "checkpoint rows")
    n = len(x2)
    groups = np.asarray(cols[group]).astype(str) if group else None
    always = None
    step2_data = {loss: x2, accuracy: y2}
    if "name" in cols:
        step2_data["name"] = np.asarray(cols["name"]).astype(str)
    if "flops" in cols:  # used only by the trend check
        step2_data["flops"] = numeric_column(cols, "flops", "checkpoint rows")
    if anchor is not None:
        if groups is None:
            groups = np.array([f"row{i}" for i in range(n)])
        groups, always = np.append(groups, "anchor"), np.append(np.zeros(n, bool), True)
        step2_data[loss], step2_data[accuracy] = np.append(x2, float(anchor[0])), np.append(y2, float(anchor[1]))
        if "name" in step2_data:
            step2_data["name"] = np.append(step2_data["name"], "anchor")
        if "flops" in step2_data:  # the anchor has no compute: give it the largest, it is the limit
            step2_data["flops"] = np.append(step2_data["flops"], step2_data["flops"].max())
    step2 = fit_law(Sigmoid(column=loss, fixed_ceiling=fixed_ceiling), step2_data, y=accuracy, groups=groups,
                    bootstrap=bootstrap, seed=seed + 1, level=level,
                    delta=delta if step2_delta is None else step2_delta, always_include=always)
    return TwoStepResult(step1, step2, level, seed)
