"""Scaling laws: one small class per law (formula, fitted parameters, bounds, initial-value grid, source).

Every law predicts in log space and gives the analytic Jacobian of log-prediction with respect to its fitted
parameters, batched over parameter vectors, so that the fitter (augury/scaling/fitting.py) can run many
L-BFGS-B problems (grid starts, bootstrap resamples) at once. Adding a law means adding one class here and
registering it in `LAWS`.

    from augury.scaling.laws import get_law
    law = get_law("chinchilla")
    law.log_predict(theta[None, :], {"params": N, "tokens": D})   # -> (1, n) log-loss
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


def _col(x: dict, name: str) -> np.ndarray:
    return np.asarray(x[name], dtype=float)


def _logsumexp_parts(parts: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """log(sum_k exp(parts[k])) and the softmax weight of each part (its share of the sum)."""
    stacked = np.stack(parts)
    top = stacked.max(axis=0)
    expd = np.exp(stacked - top)
    total = expd.sum(axis=0)
    return top + np.log(total), list(expd / total)


@dataclass(frozen=True)
class Law:
    """Base class. Subclasses set the class attributes and implement `log_predict_and_jac`.

    Fitted parameters live in `param_names` (often log-scaled for conditioning); `natural(theta)` maps them
    to the quantities of the published formula (e.g. A = exp(log_A)).
    """

    name = ""
    formula = ""
    inputs = ()  # input columns (tuple of str), each must be > 0 unless `raw_inputs` lists it
    raw_inputs = ()  # inputs used as given (no log taken, may be any sign)
    param_names = ()  # fitted parameters (tuple of str)
    bounds = ()  # (low, high) per fitted parameter, enforced by L-BFGS-B
    default_y = "loss"
    higher_is_better = False
    # The range of the predicted quantity (lo, hi). Prediction intervals are built so that they stay inside it:
    # run-to-run scatter is added in log space on (0, inf); on a finite range it is added to the value itself
    # and a draw outside the range is drawn again (FitResult.add_scatter).
    value_range = (0.0, float("inf"))

    def log_predict_and_jac(self, theta: np.ndarray, x: dict[str, np.ndarray]):
        """theta (B, P), inputs (n,) each -> (log prediction (B, n), d log prediction / d theta (B, n, P))."""
        raise NotImplementedError

    def log_predict(self, theta: np.ndarray, x: dict[str, np.ndarray]) -> np.ndarray:
        return self.log_predict_and_jac(np.atleast_2d(theta), x)[0]

    def predict(self, theta: np.ndarray, x: dict[str, np.ndarray]) -> np.ndarray:
        return np.exp(self.log_predict(theta, x))

    def initial_grid(self, x: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
        """Initial values, (G, P): the full grid the fitter starts L-BFGS-B from."""
        raise NotImplementedError

    @property
    def n_free(self) -> int:
        """Parameters the fit can move (a bound (v, v) fixes one, e.g. the sigmoid's ceiling)."""
        return sum(lo < hi for lo, hi in self.bounds)

    def natural(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """The formula's own parameters from fitted ones (vectorised over the last axis of theta)."""
        return {n: theta[..., i] for i, n in enumerate(self.param_names)}

    def _clip_grid(self, grid: np.ndarray) -> np.ndarray:
        lo, hi = np.array(self.bounds).T
        return np.clip(grid, lo, hi)


def _grid(*axes) -> np.ndarray:
    return np.array(list(itertools.product(*axes)), dtype=float)


@dataclass(frozen=True)
class GPT4Loss(Law):
    """L(C) = a * C**b + c, the GPT-4 technical report's loss law (OpenAI 2023, Sec. 3.1, Fig. 1).

    C is training compute in FLOPs (6 * params * tokens when the table lacks it). Sign convention: b is the
    exponent as written, so b < 0 for a loss that falls with compute (the report writes the same form with an
    irreducible loss c). Fitted as (log_a, b, log_c) so that a and c stay positive.
    """

    name = "gpt4-loss"
    formula = "L(C) = a * C^b + c"
    inputs = ("flops",)
    param_names = ("log_a", "b", "log_c")
    bounds = ((-50.0, 200.0), (-3.0, 0.0), (-10.0, 10.0))

    def log_predict_and_jac(self, theta, x):
        log_c_in = np.log(_col(x, "flops"))[None, :]
        la, b, lc = (theta[:, i : i + 1] for i in range(3))
        power = la + b * log_c_in
        out, (w_pow, w_c) = _logsumexp_parts([power, np.broadcast_to(lc, power.shape)])
        jac = np.stack([w_pow, w_pow * log_c_in, w_c], axis=-1)
        return out, jac

    def initial_grid(self, x, y):
        log_c_mid = float(np.median(np.log(_col(x, "flops"))))
        y_min, y_mid = float(np.min(y)), float(np.median(y))
        rows = []
        # 80 starts: with 42 (7 exponents x 6 floors) one noisy 12-run ladder in 30 ended in a valley next to the
        # optimum (objective +0.05%, forecast 3 decades out off by 1.5%); the batched descent makes them cheap
        for b in (-0.02, -0.035, -0.05, -0.075, -0.1, -0.15, -0.2, -0.3, -0.5, -0.8):
            for frac in (0.0, 0.3, 0.6, 0.8, 0.9, 0.95, 0.97, 0.99):
                c = max(frac * y_min, 1e-4)
                # a chosen so the curve passes through the median point: a * C_mid^b = y_mid - c
                la = np.log(max(y_mid - c, 1e-6)) - b * log_c_mid
                rows.append((la, b, np.log(c)))
        return self._clip_grid(np.array(rows))

    def natural(self, theta):
        return {"a": np.exp(theta[..., 0]), "b": theta[..., 1], "c": np.exp(theta[..., 2])}


@dataclass(frozen=True)
class PowerLoss(Law):
    """L(C) = a * C**b: the GPT-4 loss law without its irreducible term, i.e. Kaplan et al. 2020's L(C_min) =
    (C_c / C_min)**alpha_C (Eq. 1.3) with a = C_c**alpha_C, b = -alpha_C.

    The law for a ladder that lies far above the irreducible loss: over a decade or so of compute a third
    parameter c is not identified by the data (its interval spans zero to the rungs' loss) and the noise of the
    rungs decides the extrapolation; two parameters are. It cannot flatten, so over many decades it
    under-predicts the loss once c matters. Fitted as (log_a, b).
    """

    name = "power-loss"
    formula = "L(C) = a * C^b"
    inputs = ("flops",)
    param_names = ("log_a", "b")
    bounds = ((-50.0, 200.0), (-3.0, 0.0))

    def log_predict_and_jac(self, theta, x):
        log_c_in = np.log(_col(x, "flops"))[None, :]
        la, b = theta[:, 0:1], theta[:, 1:2]
        out = la + b * log_c_in
        jac = np.stack([np.ones_like(out), np.broadcast_to(log_c_in, out.shape)], axis=-1)
        return out, jac

    def initial_grid(self, x, y):
        log_c_mid = float(np.median(np.log(_col(x, "flops"))))
        y_mid = float(np.median(y))
        rows = [(np.log(y_mid) - b * log_c_mid, b) for b in (-0.01, -0.03, -0.05, -0.1, -0.2, -0.4, -0.8)]
        return self._clip_grid(np.array(rows))

    def natural(self, theta):
        return {"a": np.exp(theta[..., 0]), "b": theta[..., 1]}


@dataclass(frozen=True)
class Chinchilla(Law):
    """L(N, D) = E + A / N**alpha + B / D**beta (Hoffmann et al. 2022, "Training Compute-Optimal Large
    Language Models", Approach 3, Eq. 2).

    N = params, D = tokens. Fitted as (log_A, log_B, log_E, alpha, beta) with the log-sum-exp form of the
    paper's Eq. 3, from the paper's grid of initial values (alpha, beta in 0..2, log_E in -1..1, log_A,
    log_B in 0..25), and summed (not averaged) Huber loss as Besiroglu et al. 2024 ("Chinchilla Scaling:
    A replication attempt") showed is needed for L-BFGS to converge.
    """

    name = "chinchilla"
    formula = "L(N, D) = E + A / N^alpha + B / D^beta"
    inputs = ("params", "tokens")
    param_names = ("log_A", "log_B", "log_E", "alpha", "beta")
    bounds = ((-10.0, 60.0), (-10.0, 60.0), (-10.0, 5.0), (0.0, 3.0), (0.0, 3.0))

    def log_predict_and_jac(self, theta, x):
        log_n, log_d = np.log(_col(x, "params"))[None, :], np.log(_col(x, "tokens"))[None, :]
        la, lb, le, alpha, beta = (theta[:, i : i + 1] for i in range(5))
        term_n, term_d = la - alpha * log_n, lb - beta * log_d
        out, (w_n, w_d, w_e) = _logsumexp_parts([term_n, term_d, np.broadcast_to(le, term_n.shape)])
        jac = np.stack([w_n, w_d, w_e, -w_n * log_n, -w_d * log_d], axis=-1)
        return out, jac

    def initial_grid(self, x, y):
        # Hoffmann et al.'s grid (alpha, beta 0..2 by 0.5; log_E -1..1 by 0.5; log_A, log_B 0..25 by 5).
        exps = np.arange(0.0, 2.01, 0.5)
        logs = np.arange(0.0, 25.01, 5.0)
        return self._clip_grid(_grid(logs, logs, np.arange(-1.0, 1.01, 0.5), exps, exps))

    def natural(self, theta):
        return {"A": np.exp(theta[..., 0]), "B": np.exp(theta[..., 1]), "E": np.exp(theta[..., 2]),
                "alpha": theta[..., 3], "beta": theta[..., 4]}

    def compute_optimal(self, theta: np.ndarray, flops: float) -> tuple[np.ndarray, np.ndarray]:
        """N*(C), D*(C) minimising L under C = 6 N D (Hoffmann et al. Eq. 4); vectorised over theta rows."""
        theta = np.atleast_2d(theta)
        A, B = np.exp(theta[:, 0]), np.exp(theta[:, 1])
        alpha, beta = theta[:, 3], theta[:, 4]
        a = beta / (alpha + beta)
        g = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
        n_opt = g * (flops / 6.0) ** a
        return n_opt, (flops / 6.0) / n_opt


@dataclass(frozen=True)
class KaplanPower(Law):
    """L(X) = (X_c / X)**alpha + E for one input X (Kaplan et al. 2020, "Scaling Laws for Neural Language
    Models", Eqs. 1.1-1.2, with the irreducible term of Henighan et al. 2020).

    `kaplan-n` uses X = params (Kaplan recommend non-embedding parameters), `kaplan-d` uses X = tokens.
    Fitted as (log_Xc, alpha, log_E).
    """

    column: str = "params"
    formula = "L(X) = (X_c / X)^alpha + E"
    param_names = ("log_Xc", "alpha", "log_E")
    bounds = ((-20.0, 80.0), (0.0, 3.0), (-10.0, 5.0))

    @property
    def name(self):  # type: ignore[override]
        return {"params": "kaplan-n", "tokens": "kaplan-d"}.get(self.column, f"kaplan({self.column})")

    @property
    def inputs(self):  # type: ignore[override]
        return (self.column,)

    def log_predict_and_jac(self, theta, x):
        log_x = np.log(_col(x, self.column))[None, :]
        lxc, alpha, le = (theta[:, i : i + 1] for i in range(3))
        term = alpha * (lxc - log_x)
        out, (w_t, w_e) = _logsumexp_parts([term, np.broadcast_to(le, term.shape)])
        jac = np.stack([w_t * alpha, w_t * (lxc - log_x), w_e], axis=-1)
        return out, jac

    def initial_grid(self, x, y):
        log_x = np.log(_col(x, self.column))
        y_min = float(np.min(y))
        lxc = np.linspace(log_x.min() - 10, log_x.max() + 30, 9)
        return self._clip_grid(_grid(lxc, (0.05, 0.1, 0.2, 0.35, 0.5, 0.8, 1.2),
                                     np.log(np.maximum([0.05, 0.5, 0.8, 0.95], 1e-3) * y_min)))

    def natural(self, theta):
        return {f"{self.column}_c": np.exp(theta[..., 0]), "alpha": theta[..., 1], "E": np.exp(theta[..., 2])}


@dataclass(frozen=True)
class CapabilityPower(Law):
    """-E_P[log pass_rate(C)] = alpha * C**(-k) (OpenAI 2023, GPT-4 technical report, Sec. 3.2, Fig. 2).

    y is the mean over a bucket of problems of -log(pass rate) of one run; C its compute. The report's
    protocol (problems every model solves at least once, buckets by small-model difficulty, one fit per
    bucket) lives in augury/scaling/capability.py. Fitted as (log_alpha, k).
    """

    name = "capability"
    formula = "-E_P[log pass_rate(C)] = alpha * C^(-k)"
    inputs = ("flops",)
    param_names = ("log_alpha", "k")
    bounds = ((-200.0, 200.0), (-2.0, 3.0))
    default_y = "neg_log_pass_rate"

    def log_predict_and_jac(self, theta, x):
        log_c = np.log(_col(x, "flops"))[None, :]
        out = theta[:, 0:1] - theta[:, 1:2] * log_c
        jac = np.stack([np.ones_like(out), np.broadcast_to(-log_c, out.shape)], axis=-1)
        return out, jac

    def initial_grid(self, x, y):
        log_c_mid = float(np.median(np.log(_col(x, "flops"))))
        log_y_mid = float(np.median(np.log(y)))
        ks = np.array([0.0, 0.05, 0.1, 0.2, 0.4, 0.8])
        return self._clip_grid(np.stack([log_y_mid + ks * log_c_mid, ks], axis=1))

    def natural(self, theta):
        return {"alpha": np.exp(theta[..., 0]), "k": theta[..., 1]}


@dataclass(frozen=True)
class Sigmoid(Law):
    """y(x) = b + a / (1 + exp(-k (x - x0))): accuracy as a sigmoid of an input column.

    The OLMo ladder's step 2 (Bhagia et al. 2024, "Establishing Task Scaling Laws via Compute-Efficient Model
    Ladders", Eq. 2) uses x = task loss (bits per byte, k < 0); with x = flops the input is log10(flops)
    (a sigmoid of log compute). Accuracies cannot exceed 1, so the fitted parameters are
    (a_frac, x0, k, b) with a = a_frac * (1 - b), a_frac and b in [0, 1]: the ceiling a + b stays <= 1.
    With `fixed_ceiling=True` the ceiling is 1 (a = 1 - b: a model that predicts the task perfectly, task
    loss -> 0, is always right); small models far from saturation cannot pin the ceiling down.
    The fit is on log residuals like every law, so y must be > 0.
    """

    column: str = "flops"
    fixed_ceiling: bool = False
    floor: float = 0.0  # the task's chance level: the sigmoid's floor b cannot go below it
    name = "sigmoid"
    formula = "y(x) = b + a / (1 + exp(-k (x - x0)))"
    param_names = ("a_frac", "x0", "k", "b")
    default_y = "accuracy"
    higher_is_better = True

    @property
    def bounds(self):  # type: ignore[override]
        a_frac = (1.0, 1.0) if self.fixed_ceiling else (1e-6, 1.0)
        return (a_frac, (-100.0, 100.0), (-200.0, 200.0), (self.floor, 1.0 - 1e-6))

    @property
    def value_range(self):  # type: ignore[override]
        return (self.floor, 1.0)

    @property
    def inputs(self):  # type: ignore[override]
        return (self.column,)

    @property
    def raw_inputs(self):  # type: ignore[override]
        return () if self.column == "flops" else (self.column,)

    def transform(self, x: dict[str, np.ndarray]) -> np.ndarray:
        v = np.asarray(x[self.column], dtype=float)
        return np.log10(v) if self.column == "flops" else v

    def log_predict_and_jac(self, theta, x):
        xv = self.transform(x)[None, :]
        af, x0, k, b = (theta[:, i : i + 1] for i in range(4))
        a = af * (1.0 - b)
        s = 1.0 / (1.0 + np.exp(np.clip(-k * (xv - x0), -700, 700)))
        pred = np.maximum(a * s + b, 1e-300)
        ds = s * (1.0 - s)
        jac = np.stack([(1.0 - b) * s, -a * k * ds, a * (xv - x0) * ds, 1.0 - af * s], axis=-1) / pred[..., None]
        return np.log(pred), jac

    def initial_grid(self, x, y):
        xv = self.transform(x)
        lo, hi = float(xv.min()), float(xv.max())
        span = max(hi - lo, 1e-6)
        x0s = np.linspace(lo - span, hi + span, 5)
        ks = np.array([-8.0, -2.0, 2.0, 8.0]) / span
        floors = (max(0.1, self.floor), max(0.3, self.floor + 0.05)) if self.floor < 0.9 else (self.floor,)
        return np.unique(self._clip_grid(_grid((0.5, 0.9), x0s, ks, floors)), axis=0)

    def natural(self, theta):
        b = theta[..., 3]
        return {"a": theta[..., 0] * (1.0 - b), "x0": theta[..., 1], "k": theta[..., 2], "b": b}


LAWS: dict[str, Law] = {
    "gpt4-loss": GPT4Loss(),
    "power-loss": PowerLoss(),
    "chinchilla": Chinchilla(),
    "kaplan-n": KaplanPower(column="params"),
    "kaplan-d": KaplanPower(column="tokens"),
    "capability": CapabilityPower(),
    "sigmoid": Sigmoid(),
}


def get_law(law: str | Law, x_column: str | None = None) -> Law:
    """A law by name (`gpt4-loss`, `power-loss`, `chinchilla`, `kaplan-n`, `kaplan-d`, `capability`, `sigmoid`) or as
    given.

    `x_column` picks the input of the one-input laws (`sigmoid`'s x, `kaplan`'s X).
    """
    if isinstance(law, Law):
        return law
    if law not in LAWS:
        from augury.scaling.tables import TableError

        raise TableError(f"unknown law {law!r}; known: {', '.join(LAWS)} (two-step: augury.scaling.two_step)")
    if x_column and law == "sigmoid":
        return Sigmoid(column=x_column)
    if x_column and law.startswith("kaplan"):
        return KaplanPower(column=x_column)
    if problem := x_column_problem(law, x_column):
        from augury.scaling.tables import TableError

        raise TableError(f"x_column {x_column!r}: {problem}")
    return LAWS[law]


def x_column_problem(law: str, x_column: str | None) -> str | None:
    """Why an input column cannot be chosen for `law` (a registered name), or None: only the one-input laws
    `sigmoid` and `kaplan-*` take one; any other law would fit its own inputs and drop the column without a word.
    Naming the one input a law takes anyway (`flops` for `gpt4-loss`) changes nothing and is allowed."""
    if not x_column or law == "sigmoid" or law.startswith("kaplan") or law not in LAWS:
        return None
    takes = LAWS[law].inputs
    if takes == (x_column,):
        return None
    return (f"law {law!r} takes {', '.join(takes)}, so this column would be ignored (an input column is chosen only "
            f"for sigmoid and kaplan-n/kaplan-d)")
