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

__all__ = ["LAWS", "Law", "get_law", "fit_law", "FitResult", "read_table", "read_problems", "select",
           "TableError", "fit_capability", "CapabilityResult", "fit_two_step", "TwoStepResult", "plot_fit"]
