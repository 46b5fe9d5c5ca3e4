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


def _pool_folder(root, seed, losses_per_rung):
    """A finished forecast as ladder_design_resample reads it: rungs' seed losses, the target's loss, the seed."""
    import json

    folder = root / f"seed{seed}"
    folder.mkdir(parents=True)
    ladder = [{"name": f"rung{i + 1}", "d_model": 16 * (i + 1), "params_non_embedding": 1e4 * 2 ** i,
               "tokens": 1e6 * 2 ** i, "seconds": 1.0, "loss": 4.0 - 0.2 * i,
               "seed_losses": [4.0 - 0.2 * i + 0.01 * j + 0.001 * seed for j in range(losses_per_rung)]}
              for i in range(3)]
    (folder / "forecast.json").write_text(json.dumps({"ladder": ladder, "target": {
        "d_model": 128, "params_non_embedding": 1e6, "tokens": 1e8}}))
    (folder / "result.json").write_text(json.dumps({"loss": {"actual": 3.0}}))
    (folder / "plan.json").write_text(json.dumps({"identity": {"config": {"seed": seed}}}))


@pytest.mark.parametrize("design, message", [("3,3,3", "rung1 has 2 runs"), ("1,0,1", "at least 3 runs")])
def test_a_design_the_pool_cannot_fill_is_one_error(tmp_path, monkeypatch, capsys, design, message):
    """A design drawing more seeds at a rung than the folders trained there was numpy's 'Cannot take a larger
    sample than population' traceback, and one of two runs in all a ZeroDivisionError (the line's residual spread
    has n − 2 degrees of freedom); both are now one error before any design is simulated."""
    import sys

    from experiments.forecast_refits import ladder_design_resample

    _pool_folder(tmp_path, 0, 2)
    monkeypatch.setattr(sys, "argv", ["ladder_design_resample", str(tmp_path / "seed*"), "--designs", "2,2,2",
                                      design, "--draws", "20"])
    with pytest.raises(SystemExit, match=message):
        ladder_design_resample.main()
    assert "2,2,2" not in capsys.readouterr().out


def test_grid_variant_compare_names_a_variant_with_no_forecast(tmp_path, monkeypatch, capsys):
    """A misspelt or unfinished variant printed the table's header and nothing else, as if the variants shared no
    width; now one error naming the variant's folder."""
    import sys

    from experiments.forecast_refits import grid_variant_compare

    _pool_folder(tmp_path / "a", 0, 2)
    monkeypatch.setattr(sys, "argv", ["grid_variant_compare", str(tmp_path), "a", "b"])
    with pytest.raises(SystemExit, match="b: no seed"):
        grid_variant_compare.main()
    assert capsys.readouterr().out == ""


def test_capability_replay_without_recorded_samples_is_an_error(tmp_path, monkeypatch, capsys):
    """Finished forecasts none of which recorded capability samples printed 'mean nan% sd nan% within 10% on 0 of 0'
    (numpy's warnings beside it); now one error saying what is missing."""
    import sys

    from experiments.forecast_refits import capability_crossfit_replay

    _pool_folder(tmp_path, 0, 2)
    monkeypatch.setattr(sys, "argv", ["capability_crossfit_replay", str(tmp_path / "seed*")])
    with pytest.raises(SystemExit, match="capability/target.json"):
        capability_crossfit_replay.main()
    assert "nan" not in capsys.readouterr().out
