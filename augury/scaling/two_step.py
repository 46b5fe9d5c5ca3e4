"""The OLMo ladder's two-step task prediction (Bhagia et al. 2024, "Establishing Task Scaling Laws via
Compute-Efficient Model Ladders", Sec. 3): step 1 predicts a task's loss (bits per byte) from (N, D) with the
Chinchilla form; step 2 maps task loss to accuracy with a sigmoid. Intervals are propagated by pushing each
step-1 bootstrap draw through a step-2 bootstrap draw (the two are fitted on different data, so their
draws are paired independently).

    from augury.scaling.two_step import fit_two_step
    res = fit_two_step(final_rows, checkpoint_rows, loss="task_bpb", accuracy="task_acc", group="run")
    acc, interval, loss = res.predict({"params": 13e9, "tokens": 5e12})
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from augury.scaling.laws import Sigmoid
from augury.scaling.result import FitResult, fit_law
from augury.scaling.tables import columns_from


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
        if self.step1.noise:
            loss_draws = loss_draws * np.exp(rng.choice(self.step1.residuals(), size=loss_draws.shape))
        acc_draws = np.stack([self.step2.law.predict(b2[i], {self.step2.law.column: loss_draws[i]})[0]
                              for i in range(m)])
        if self.step2.noise:
            acc_draws = acc_draws * np.exp(rng.choice(self.step2.residuals(), size=acc_draws.shape))
        q = [(1 - self.level) / 2 * 100, (1 + self.level) / 2 * 100]
        return acc, np.percentile(acc_draws, q, axis=0).T, loss

    def to_json(self) -> dict:
        return {"law": "two-step", "status": self.status, "step1": self.step1.to_json(),
                "step2": self.step2.to_json()}


def fit_two_step(final_rows, checkpoint_rows, loss: str, accuracy: str, group: str | None = None, *,
                 fixed_ceiling: bool = True, bootstrap: int = 1000, seed: int = 0, level: float = 0.9,
                 delta: float = 1e-3) -> TwoStepResult:
    """Fit both steps.

    Args:
        final_rows: one row per run at its final (fully decayed) checkpoint: params, tokens, `loss`.
        checkpoint_rows: rows (any checkpoints) with `loss` and `accuracy`; step 2 does not depend on where a
            run's schedule is, so intermediate checkpoints are valid data for it.
        loss: the task-loss column (e.g. bits per byte).
        accuracy: the accuracy column.
        group: column naming the run of each checkpoint row: the step-2 bootstrap resamples whole runs.
        fixed_ceiling: the sigmoid's ceiling is 1 (see laws.Sigmoid); False fits it.
        bootstrap, seed, level, delta: as in fit_law.
    """
    step1 = fit_law("chinchilla", final_rows, y=loss, bootstrap=bootstrap, seed=seed, level=level, delta=delta)
    cols = columns_from(checkpoint_rows)
    groups = cols[group] if group else None
    step2 = fit_law(Sigmoid(column=loss, fixed_ceiling=fixed_ceiling), checkpoint_rows, y=accuracy, groups=groups, bootstrap=bootstrap,
                    seed=seed + 1, level=level, delta=delta)
    return TwoStepResult(step1, step2, level, seed)
