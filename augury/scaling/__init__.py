"""Scaling laws with honest uncertainty: fit, forecast, backtest (see docs/scaling.md).

    from augury.scaling import fit_law, read_table
    result = fit_law("chinchilla", read_table("runs.csv"), bootstrap=1000, seed=0)
    value, interval = result.predict({"params": 7e9, "tokens": 4e12})
"""

from augury.scaling.capability import CapabilityResult, fit_capability
from augury.scaling.laws import LAWS, Law, get_law
from augury.scaling.plotting import plot_fit
from augury.scaling.result import FitResult, fit_law
from augury.scaling.tables import TableError, read_problems, read_table, select
from augury.scaling.two_step import TwoStepResult, fit_two_step

__all__ = ["LAWS", "CapabilityResult", "FitResult", "Law", "TableError", "TwoStepResult", "fit_capability",
           "fit_law", "fit_two_step", "get_law", "plot_fit", "read_problems", "read_table", "select"]
