"""Benchmarks that train from scratch empty their --out folder: only one a benchmark made, never a user's runs."""

import pytest

from benchmarks.preset_runs import SCRATCH_MARK, scratch_folder


def test_a_folder_a_benchmark_did_not_make_is_never_emptied(tmp_path):
    runs = tmp_path / "runs"
    (runs / "forecast-cpu-demo").mkdir(parents=True)
    (runs / "forecast-cpu-demo" / "result.json").write_text("{}")
    with pytest.raises(SystemExit, match="not made by a benchmark"):
        scratch_folder(runs)
    assert (runs / "forecast-cpu-demo" / "result.json").read_text() == "{}"


def test_a_benchmarks_own_folder_is_emptied_for_the_next_measurement(tmp_path):
    out = scratch_folder(tmp_path / "bench")
    (out / "serial").mkdir()
    again = scratch_folder(tmp_path / "bench")
    assert sorted(p.name for p in again.iterdir()) == [SCRATCH_MARK]
    assert scratch_folder(tmp_path / "empty-made-by-hand").is_dir()
