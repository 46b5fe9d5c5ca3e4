"""Plots in the style of the GPT-4 report's Figures 1-2: log-compute axis, observed runs, the fitted curve,
the forecast point with its interval, and the actual value when it is known. Matplotlib, Agg backend.

    from augury.scaling.plotting import plot_fit
    plot_fit(result, "fit.png", forecasts=result.forecast({"flops": 1e24}))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from augury.io import atomic_write_bytes


def _axis(law, x: dict[str, np.ndarray]) -> tuple[np.ndarray, str, bool]:
    """The x coordinate of rows: compute for compute-like laws, else the law's input column."""
    if "params" in x and "tokens" in x:
        return 6.0 * np.asarray(x["params"], float) * np.asarray(x["tokens"], float), "compute 6·N·D (FLOPs)", True
    col = law.inputs[0]
    raw = col in law.raw_inputs
    return np.asarray(x[col], float), ("compute (FLOPs)" if col == "flops" else col), not raw


def _curve_inputs(result, xs: np.ndarray, ratio: float | None) -> dict[str, np.ndarray]:
    if "params" in result.x and "tokens" in result.x:
        # along a fixed tokens/params ratio: C = 6 N D = 6 r N^2
        n = np.sqrt(xs / (6.0 * ratio))
        return {"params": n, "tokens": ratio * n}
    return {result.law.inputs[0]: xs}


def plot_fit(result, path: str | Path, forecasts: list[dict] | None = None, title: str | None = None,
             notes: list[str] | None = None) -> None:
    """Write a PNG of `result` with optional forecast records (value, interval, optional actual)."""
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    from augury.scaling.limits import MAX_EXTRAPOLATION_DECADES

    law = result.law
    # a point refused for being too far out is not drawn: an axis out to it would squash the data (or overflow)
    forecasts = [f for f in forecasts or [] if f.get("extrapolation_decades", 0) <= MAX_EXTRAPOLATION_DECADES]
    xd, xlabel, logx = _axis(law, result.x)
    fx = np.array([_axis(law, {k: np.array([v]) for k, v in f["inputs"].items()})[0][0] for f in forecasts])
    lo = min(xd.min(), fx.min()) if fx.size else xd.min()
    hi = max(xd.max(), fx.max()) if fx.size else xd.max()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    nd = "params" in result.x and "tokens" in result.x
    if nd:
        ratios = ([f["inputs"]["tokens"] / f["inputs"]["params"] for f in forecasts] if forecasts
                  else [float(np.median(result.x["tokens"] / result.x["params"]))])
    else:
        ratios = [1.0]
    for k, ratio in enumerate(sorted(set(np.round(ratios, 6)))[:4]):
        pad = 0.1 * (hi - lo)
        xs = np.geomspace(lo / 1.5, hi * 1.5, 200) if logx else np.linspace(lo - pad, hi + pad, 200)
        xin = _curve_inputs(result, xs, ratio)
        ax.plot(xs, law.predict(result.theta, xin)[0], "--", color="C0", lw=1.2,
                label="fit" + (f" (D/N={ratio:.0f})" if nd else "") if k < 2 else None)
        if result.boot_theta is not None and len(result.boot_theta):
            draws = law.predict(result.boot_theta, xin)
            q = [(1 - result.level) / 2 * 100, (1 + result.level) / 2 * 100]
            band = np.percentile(draws, q, axis=0)
            ax.fill_between(xs, band[0], band[1], color="C0", alpha=0.15, lw=0,
                            label=f"{result.level:.0%} band" if k == 0 else None)
    ax.scatter(xd, result.y, s=18, color="black", zorder=3, label="observed runs")
    for i, f in enumerate(forecasts):
        if f.get("value") is None:  # not forecastable: no point is drawn, only the actual value if known
            if "actual" in f:
                ax.scatter([fx[i]], [f["actual"]], marker="*", s=120, color="C2", zorder=5,
                           label="actual (not forecastable)" if i == 0 else None)
            continue
        lo_i, hi_i = f["interval"]
        if np.isfinite([lo_i, hi_i]).all():
            # drawn about its own middle: a percentile interval need not contain the point forecast
            ax.errorbar([fx[i]], [(lo_i + hi_i) / 2], yerr=[[(hi_i - lo_i) / 2]], fmt="none", color="C3", capsize=4,
                        zorder=4)
        ax.plot([fx[i]], [f["value"]], "o", color="C3", zorder=4, label="prediction" if i == 0 else None)
        if "actual" in f:
            ax.scatter([fx[i]], [f["actual"]], marker="*", s=120, color="C2", zorder=5,
                       label="actual" if i == 0 else None)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(result.y_column)
    ax.set_title(title or f"{law.name}: {law.formula}", fontsize=10)
    lines = list(notes or [])
    if result.trend.get("shape") in ("inverse", "u-shaped"):
        lines.append(f"trend: {result.trend['shape']} ({result.trend['detail']})")
    if result.status != "converged":
        lines.append("FIT DID NOT CONVERGE")
    fc_status, fc_reason = result.forecastability()
    if fc_status != "ok":
        lines.append(f"{fc_status.upper()}: {fc_reason}")
    if lines:
        ax.text(0.01, 0.01, "\n".join(lines), transform=ax.transAxes, fontsize=7, va="bottom", color="C3")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
