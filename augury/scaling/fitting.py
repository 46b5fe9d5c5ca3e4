"""Fitting a law: summed Huber loss on log residuals, L-BFGS-B from a full grid, and a vectorised bootstrap.

The objective of one fit is  sum_i w_i * huber_delta(log f(x_i; theta) - log y_i)  (summed, not averaged:
averaging shrinks the gradient by 1/n and made Chinchilla's own fit stop early, Besiroglu et al. 2024).

Many independent fits (every grid start; every bootstrap resample) are solved as ONE L-BFGS-B problem over the
stacked parameters: the objective is separable, so its gradient is the stacked per-fit gradients and one
scipy call replaces thousands of Python-level calls. Each fit's own convergence is then checked from its own
projected gradient; any fit that did not converge is polished alone with scipy's L-BFGS-B.

    from augury.scaling.fitting import fit_arrays
    result = fit_arrays("chinchilla", {"params": N, "tokens": D}, loss, bootstrap=1000, seed=0)
    value, (low, high) = result.predict({"params": 7e9, "tokens": 4e12})
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from augury.scaling.laws import Law

# A fit whose projected gradient (of the objective divided by delta) is below this is converged.
PGTOL = 1e-7


def huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss of residuals and its derivative (same definition as scipy.special.huber)."""
    a = np.abs(r)
    value = np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))
    return value, np.clip(r, -delta, delta)


@dataclass
class FitProblem:
    """One dataset, ready to fit: inputs (n,) per column, targets y (n,) > 0, weights (n,), Huber delta."""

    law: Law
    x: dict[str, np.ndarray]
    y: np.ndarray
    weights: np.ndarray
    delta: float = 1e-3

    @property
    def log_y(self) -> np.ndarray:
        return np.log(self.y)

    def objective(self, theta: np.ndarray, weights: np.ndarray | None = None):
        """Per-fit objective (B,) and gradient (B, P) for stacked parameters theta (B, P).

        `weights` (B, n) gives each fit its own row weights (bootstrap counts times user weights).
        The objective is divided by delta so that its scale does not depend on delta.
        """
        w = self.weights[None, :] if weights is None else weights
        log_pred, jac = self.law.log_predict_and_jac(theta, self.x)
        value, slope = huber(log_pred - self.log_y[None, :], self.delta)
        f = (w * value).sum(axis=1) / self.delta
        g = np.einsum("bn,bnp->bp", w * slope, jac) / self.delta
        return f, g


def _projected_grad(theta: np.ndarray, grad: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Max |gradient| over components not pushing against an active bound (L-BFGS-B's stopping test)."""
    lo, hi = bounds[:, 0], bounds[:, 1]
    pg = grad.copy()
    pg[(theta <= lo + 1e-10) & (grad > 0)] = 0.0
    pg[(theta >= hi - 1e-10) & (grad < 0)] = 0.0
    return np.abs(pg).max(axis=-1)


@dataclass
class BatchResult:
    theta: np.ndarray  # (B, P)
    objective: np.ndarray  # (B,)
    converged: np.ndarray  # (B,) bool
    messages: list[str] = field(default_factory=list)
    n_iter: int = 0


def _is_numerical_minimum(problem: FitProblem, theta: np.ndarray, f: float, weights) -> bool:
    """True if no step of relative size 1e-6 along +-each coordinate (inside the bounds) lowers f."""
    bounds = np.array(problem.law.bounds, dtype=float)
    h = 1e-6 * (1.0 + np.abs(theta))
    probes = np.concatenate([theta + np.diag(h), theta - np.diag(h)])
    probes = np.clip(probes, bounds[:, 0], bounds[:, 1])
    w = None if weights is None else np.repeat(np.atleast_2d(weights), len(probes), 0)
    values = problem.objective(probes, w)[0]
    return bool((values >= f - 1e-12 * max(abs(f), 1e-12)).all())


def lbfgsb(problem: FitProblem, start: np.ndarray, weights: np.ndarray | None = None,
           max_iter: int = 2000) -> BatchResult:
    """One fit with scipy's L-BFGS-B; converged when scipy reports success (projected gradient or
    relative reduction test) and it did not stop on the iteration limit."""
    bounds = np.array(problem.law.bounds, dtype=float)
    w = None if weights is None else np.atleast_2d(weights)

    def fun(theta):
        f, g = problem.objective(theta[None, :], w)
        return float(f[0]), g[0]

    res = minimize(fun, np.asarray(start, float), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": max_iter, "ftol": 1e-13, "gtol": PGTOL})
    # ABNORMAL_TERMINATION_IN_LNSRCH happens when started at (or reaching) an optimum within rounding, which
    # the kinks of a small-delta Huber objective make common: accept it only if no coordinate probe lowers f.
    at_optimum = "ABNORMAL" in str(res.message) and _is_numerical_minimum(problem, res.x, float(res.fun), w)
    ok = (bool(res.success) or at_optimum) and res.nit < max_iter and np.isfinite(res.fun)
    return BatchResult(res.x[None, :], np.array([res.fun]), np.array([ok]), [str(res.message)], int(res.nit))


def newton_batch(problem: FitProblem, starts: np.ndarray, weights: np.ndarray | None = None,
                 max_iter: int = 200) -> BatchResult:
    """Many independent fits at once by a projected Levenberg-Marquardt iteration on the Huber objective.

    The curvature is the IRLS (Gauss-Newton) form J^T diag(w psi(r)/r) J, each fit keeps its own damping, so
    one slow fit does not hold the others back; all linear algebra is batched (B small P x P solves).
    A fit is converged when its projected gradient is below PGTOL, when the Newton decrement is negligible,
    or when no damped step can lower its objective any more (at a kink of the Huber objective).
    """
    law = problem.law
    theta = np.atleast_2d(np.asarray(starts, dtype=float)).copy()
    n_fits, n_par = theta.shape
    bounds = np.array(law.bounds, dtype=float)
    lo, hi = bounds[:, 0], bounds[:, 1]
    theta = np.clip(theta, lo, hi)
    w_all = np.repeat(problem.weights[None], n_fits, 0) if weights is None else np.asarray(weights, float)
    log_y = problem.log_y[None, :]

    def evaluate(th, w):
        log_pred, jac = law.log_predict_and_jac(th, problem.x)
        r = log_pred - log_y
        value, slope = huber(r, problem.delta)
        f = (w * value).sum(1) / problem.delta
        g = np.einsum("bn,bnp->bp", w * slope, jac) / problem.delta
        irls = np.where(np.abs(r) <= problem.delta, 1.0, problem.delta / np.maximum(np.abs(r), 1e-300))
        h = np.einsum("bn,bnp,bnq->bpq", w * irls, jac, jac) / problem.delta
        bad = ~np.isfinite(f)
        f[bad] = np.inf
        return f, np.nan_to_num(g), np.nan_to_num(h)

    f, g, h = evaluate(theta, w_all)
    lam = np.full(n_fits, 1e-3)
    flat = np.zeros(n_fits, int)  # consecutive iterations with a negligible relative decrease of f
    done = np.zeros(n_fits, bool)
    converged = np.zeros(n_fits, bool)
    eye = np.eye(n_par)
    it = 0
    for it in range(1, max_iter + 1):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        th, ga, ha = theta[act], g[act], h[act]
        # free variables: not pinned at a bound by a gradient pushing outward
        pinned = ((th <= lo + 1e-12) & (ga > 0)) | ((th >= hi - 1e-12) & (ga < 0))
        ga_free = np.where(pinned, 0.0, ga)
        diag = np.maximum(np.einsum("bpp->bp", ha), 1e-12)
        a = ha + lam[act, None, None] * diag[:, :, None] * eye + 1e-12 * eye
        a = np.where(pinned[:, :, None] | pinned[:, None, :], 0.0, a) + pinned[:, :, None] * eye
        step = -np.linalg.solve(a, ga_free[..., None])[..., 0]
        trial = np.clip(th + step, lo, hi)
        f_new, g_new, h_new = evaluate(trial, w_all[act])
        better = f_new < f[act] - 1e-15 * np.abs(f[act])
        tiny_gain = (f[act] - np.where(better, f_new, f[act])) <= 1e-11 * np.maximum(np.abs(f[act]), 1e-12)
        flat[act] = np.where(tiny_gain, flat[act] + 1, 0)
        acc = act[better]
        theta[acc], f[acc], g[acc], h[acc] = trial[better], f_new[better], g_new[better], h_new[better]
        lam[acc] = np.maximum(lam[acc] / 5.0, 1e-12)
        lam[act[~better]] *= 8.0
        pg = _projected_grad(theta[act], g[act], bounds)
        small_step = np.abs(trial - th).max(1) < 1e-12 * (1 + np.abs(th).max(1))
        # Newton decrement: the decrease a full step still promises; tiny relative to f means converged.
        decrement = 0.5 * np.abs((step * ga_free).sum(1))
        conv = (pg <= PGTOL) | (better & (lam[act] < 1.0) & (decrement <= 1e-12 * np.maximum(f[act], 1e-6)))
        # No damped step, however short, lowers f: numerically at a minimum (the same judgement as
        # L-BFGS-B's relative-reduction test, needed at the kinks of a Huber objective with a small delta).
        stuck = (lam[act] > 1e10) | (~better & small_step) | (flat[act] >= 6)
        converged[act] = conv | stuck
        done[act] = conv | stuck
    return BatchResult(theta, f, converged, ["newton-batch"] * n_fits, it)


def minimize_batch(problem: FitProblem, starts: np.ndarray, weights: np.ndarray | None = None,
                   max_iter: int = 200) -> BatchResult:
    """B independent fits: batched Levenberg-Marquardt; the few fits still crawling along a flat valley get a
    10x longer batched run (cheap: only they are active), and L-BFGS-B alone for any that remain."""
    out = newton_batch(problem, starts, weights, max_iter=max_iter)
    rest = np.flatnonzero(~out.converged)
    if rest.size:
        more = newton_batch(problem, out.theta[rest], None if weights is None else weights[rest],
                            max_iter=10 * max_iter)
        better = more.objective <= out.objective[rest]
        idx = rest[better]
        out.theta[idx], out.objective[idx], out.converged[idx] = (more.theta[better], more.objective[better],
                                                                   more.converged[better])
    for i in np.flatnonzero(~out.converged):
        one = lbfgsb(problem, out.theta[i], None if weights is None else weights[i], max_iter=1000)
        if one.objective[0] <= out.objective[i] or one.converged[0]:
            out.theta[i], out.objective[i] = one.theta[0], one.objective[0]
            out.converged[i], out.messages[i] = one.converged[0], one.messages[0]
    return out


def fit_grid(problem: FitProblem, grid: np.ndarray | None = None, max_iter: int = 2000,
             keep: int = 8) -> tuple[np.ndarray, dict]:
    """L-BFGS-B from every point of the law's full initial-value grid; the best optimum is kept.

    Every grid start is first descended by the batched Levenberg-Marquardt iteration (vectorised over
    the grid), then the `keep` best distinct end points are each run to convergence by scipy's L-BFGS-B,
    whose result and status are final. `max_iter` bounds L-BFGS-B's iterations (1 forces non-convergence).
    Returns (theta, info) with info: status, message, objective, n_starts, n_iter, seconds.
    """
    if grid is None:
        grid = problem.law.initial_grid(problem.x, problem.y)
    t0 = time.perf_counter()
    coarse = newton_batch(problem, grid, max_iter=min(100, max_iter))
    order = np.argsort(np.where(np.isfinite(coarse.objective), coarse.objective, np.inf))
    best, tried = None, []
    for i in order:
        if len(tried) >= keep:
            break
        if any(np.allclose(coarse.theta[i], t, rtol=1e-4, atol=1e-6) for t in tried):
            continue
        tried.append(coarse.theta[i])
        one = lbfgsb(problem, coarse.theta[i], max_iter=max_iter)
        if best is None or one.objective[0] < best.objective[0] - 1e-12 * abs(best.objective[0]):
            best = one
    assert best is not None
    info = {"status": "converged" if bool(best.converged[0]) else "not-converged",
            "message": best.messages[0], "objective": float(best.objective[0]), "n_starts": len(grid),
            "n_iter": best.n_iter, "seconds": round(time.perf_counter() - t0, 3)}
    return best.theta[0], info


def bootstrap_counts(groups: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n_rows) multiplicities of each row when whole groups (runs) are resampled with replacement."""
    labels, inverse = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(labels), size=(n_resamples, len(labels)))
    group_counts = np.stack([np.bincount(p, minlength=len(labels)) for p in picks])
    return group_counts[:, inverse].astype(float)


def bootstrap_fits(problem: FitProblem, theta_hat: np.ndarray, groups: np.ndarray, n_resamples: int,
                   seed: int, max_iter: int = 300) -> BatchResult:
    """Refit on `n_resamples` bootstrap resamples of the runs, all warm-started from the full-data optimum."""
    counts = bootstrap_counts(groups, n_resamples, seed)
    weights = counts * problem.weights[None, :]
    starts = np.repeat(np.asarray(theta_hat, float)[None, :], n_resamples, axis=0)
    return minimize_batch(problem, starts, weights, max_iter=max_iter)
