"""What a fit may be asked and what its forecasts may claim: the settings a fit can use, the values a law's column
can hold, and when a prediction carries a warning or is refused (docs/scaling.md, "What is refused, and why").

    check_settings(bootstrap=1000, level=0.9, delta=1e-3)     # TableError for a setting no fit can use
    check_range(law, cols, "acc", y, "table")                 # TableError for a value above the law's range
    extrapolation_refusal(5.2)      # "5.2 decades outside the fitted data, beyond the 4 a forecast may reach ..."
    refuse(record, reason)          # not-forecastable: value and interval None, the point kept as unsupported_value

`fit_law` and `FitResult.forecast` (result.py), the two-step and capability fits and `augury fit`/`backtest` apply
these, so a rule reads the same wherever a forecast is made.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from augury.scaling.laws import Law
from augury.scaling.tables import TableError

# Predictions more than this many decades of a law's (log-scaled) input outside the data carry a warning.
WARN_EXTRAPOLATION_DECADES = 2.0
# Predictions further out than this are refused (docs/scaling.md): the GPT-4 report's loss forecast, the farthest
# one published with its check, reached 4 decades; beyond, an interval says what the law implies, not what the
# data support, and a unit mistake (PF-days against FLOPs: 20 decades) lands there.
MAX_EXTRAPOLATION_DECADES = 4.0
# A prediction whose interval spans more than this share of its metric's finite range says nothing: refused.
MAX_INTERVAL_SHARE = 0.5


def refuse(rec: dict, reason: str) -> dict:
    """Mark a prediction record not-forecastable with `reason`: `value` and `interval` become None, the point the fit
    would have given is kept as `unsupported_value` (and a relative error to an actual as `unsupported_rel_error`)."""
    rec["status"], rec["reason"] = "not-forecastable", reason
    if rec.get("value") is not None:
        rec["unsupported_value"] = rec["value"] if np.isfinite(rec["value"]) else None
    rec["value"], rec["interval"] = None, None
    if rec.get("rel_error") is not None:
        err = rec["rel_error"]
        rec["unsupported_rel_error"] = err if np.isfinite(err) else None
        rec["rel_error"], rec["covered"] = None, None
    return rec


def extrapolation_warning(decades: float) -> str:
    """The warning a prediction this many decades outside the data carries ("" within WARN_EXTRAPOLATION_DECADES)."""
    if decades <= WARN_EXTRAPOLATION_DECADES:
        return ""
    return (f"extrapolates {decades:.1f} decades outside the fitted data (> {WARN_EXTRAPOLATION_DECADES:g}); the "
            f"interval assumes the law holds there")


def extrapolation_refusal(decades: float) -> str:
    """Why a prediction this many decades outside the data is refused ("" within MAX_EXTRAPOLATION_DECADES)."""
    if decades <= MAX_EXTRAPOLATION_DECADES:
        return ""
    return (f"{decades:.1f} decades outside the fitted data, beyond the {MAX_EXTRAPOLATION_DECADES:g} a forecast may "
            f"reach (check the units: PF-days against FLOPs are 20 decades apart)")


def wide_interval(interval, level: float, value_range) -> str:
    """Why a prediction with this interval says nothing ("" when it says something): on a metric with a finite
    range, an interval spanning more than MAX_INTERVAL_SHARE of it."""
    lo, hi = value_range
    width = interval[1] - interval[0]
    if not (np.isfinite(hi) and width > MAX_INTERVAL_SHARE * (hi - lo)):
        return ""
    return f"the {level:.0%} interval spans {width / (hi - lo):.0%} of the metric's range [{lo:g}, {hi:g}]"


def min_bootstrap(level: float) -> int:
    """The fewest resamples whose percentile interval at `level` has at least one draw beyond each end; with fewer,
    the ends are the extreme draws (or one draw), whatever the level, and the interval does not mean it."""
    return math.ceil(2.0 / (1.0 - level) - 1e-9)


def check_settings(bootstrap: int, level: float, delta: float, prefix: str = "",
                   intervals_for: str | None = None, max_iter: int = 1) -> None:
    """TableError for a setting no fit can use: a level outside (0, 1), a Huber delta <= 0, an iteration limit
    below 1, or a bootstrap count too small to give an interval at the level. 0 (no intervals) is allowed unless
    `intervals_for` names what needs them. `prefix` goes before each setting's name (a CLI passes "--")."""
    if not (isinstance(max_iter, numbers.Integral) and not isinstance(max_iter, bool) and max_iter >= 1):
        raise TableError(f"{prefix}max_iter (the L-BFGS-B iteration limit) must be at least 1, got {max_iter}")
    if not (isinstance(level, numbers.Real) and 0 < level < 1):
        raise TableError(f"{prefix}level must be in (0, 1) (the interval's coverage, e.g. 0.9), got {level}")
    if not (isinstance(delta, numbers.Real) and 0 < delta < math.inf):
        raise TableError(f"{prefix}delta (the Huber delta) must be a finite number > 0, got {delta}")
    need = min_bootstrap(level)
    enough = f"at least {need} resamples for a {100 * level:g}% interval (one beyond each end)"
    integer = isinstance(bootstrap, numbers.Integral) and not isinstance(bootstrap, bool)
    if intervals_for and not (integer and bootstrap >= need):
        raise TableError(f"{prefix}bootstrap must be {enough}: {intervals_for} needs intervals; got {bootstrap}")
    if not integer or (bootstrap != 0 and bootstrap < need):
        raise TableError(f"{prefix}bootstrap must be 0 (no intervals) or {enough}, got {bootstrap}")


def above_range(law: Law, value: float) -> str:
    """Why `value` cannot be a value of `law`'s fitted column ("" when it can): above the top of its range (an
    accuracy given as a percentage). Below the floor is allowed: a run at chance scatters below it."""
    lo, top = law.value_range
    if not (np.isfinite(top) and value > top):
        return ""
    return (f"{value:g} is above {top:g}, the top of the range [{lo:g}, {top:g}] of law {law.name!r} (an accuracy "
            f"is a fraction: percentages divided by 100)")


def check_range(law: Law, cols: dict, y_col: str, y_arr: np.ndarray, where: str) -> None:
    """TableError naming the first row of column `y_col` whose value is above the law's range (`above_range`): the
    law cannot reach it, and a fit would only run into its bounds (or a forecast be scored against it)."""
    for i, v in enumerate(y_arr):
        if why := above_range(law, float(v)):
            row = f"row {i + 1}" + (f" (name {str(cols['name'][i])!r})" if "name" in cols else "")
            raise TableError(f"{where}: column {y_col!r} {row}: {why}")
