"""experiments/forecast_refits/finished_forecasts.py: which forecast folders the look-back scripts refit."""

from __future__ import annotations

import pytest

from experiments.forecast_refits.finished_forecasts import finished_forecasts


def _forecast(root, name, finished=True):
    folder = root / name
    folder.mkdir()
    (folder / "forecast.json").write_text("{}")
    if finished:
        (folder / "result.json").write_text("{}")
    (root / f"{name}.log").write_text("")  # benchmarks.forecast_seeds writes each forecast's log beside it
    return folder


def test_finished_folders_are_found_and_logs_beside_them_ignored(tmp_path):
    a, b = _forecast(tmp_path, "seed0"), _forecast(tmp_path, "seed1")
    assert finished_forecasts([str(tmp_path / "seed*")]) == [a, b]


def test_an_unfinished_folder_is_an_error_not_a_smaller_count(tmp_path):
    """A forecast whose target had not finished (no result.json) was left out without a word, so the scripts' counts
    ('within 3%: 5/5') silently covered fewer seeds than asked for."""
    _forecast(tmp_path, "seed0")
    _forecast(tmp_path, "seed1", finished=False)
    with pytest.raises(SystemExit, match="seed1: not a finished forecast"):
        finished_forecasts([str(tmp_path / "seed*")])


def test_a_pattern_matching_nothing_is_an_error(tmp_path):
    _forecast(tmp_path, "seed0")
    with pytest.raises(SystemExit, match="seed9"):
        finished_forecasts([str(tmp_path / "seed0"), str(tmp_path / "seed9")])
