"""Runs tables: reading CSV/JSONL, flops = 6*params*tokens, row selection, and one clear error per bad input."""

import json

import numpy as np
import pytest

from augury.scaling import TableError, fit_law, read_table, select
from augury.scaling.tables import parse_assignments, read_problems


def test_csv_and_jsonl_read_alike_with_flops_filled(tmp_path):
    (tmp_path / "t.csv").write_text("name,params,tokens,loss,flops\na,1e8,2e9,3.1,\nb,2e8,4e9,2.9,5e18\n")
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"name": "a", "params": 1e8, "tokens": 2e9, "loss": 3.1}, {"name": "b", "params": 2e8, "tokens": 4e9,
                                                                   "loss": 2.9, "flops": 5e18}]) + "\n")
    for f in ("t.csv", "t.jsonl"):
        rows = read_table(tmp_path / f)
        assert rows[0]["flops"] == pytest.approx(6 * 1e8 * 2e9)  # filled
        assert rows[1]["flops"] == 5e18  # given value kept
        assert rows[0]["name"] == "a"


def test_where_expressions():
    rows = [{"name": "a", "flops": 1e20, "params": 1e8}, {"name": "b", "flops": 3e21, "params": 1e9}]
    assert select(rows, "flops>2e21") == [False, True]
    assert select(rows, "flops<2e21 or name=='b'") == [True, True]
    assert select(rows, "not (params>=1e9) and name!='z'") == [True, False]
    assert select(rows, "1e19 < flops < 1e21") == [True, False]
    with pytest.raises(TableError, match="selects no rows"):
        select(rows, "flops>1e30")
    with pytest.raises(TableError, match="unknown column 'flop'"):
        select(rows, "flop>1")
    with pytest.raises(TableError, match="not allowed"):
        select(rows, "__import__('os')")


def test_predict_assignments():
    assert parse_assignments("params=7e9, tokens=4e12") == {"params": 7e9, "tokens": 4e12}
    with pytest.raises(TableError, match="not a number"):
        parse_assignments("flops=lots")


@pytest.mark.parametrize("table, law, message", [
    ({"params": [1e8, 2e8, 4e8, 8e8], "loss": [3, 2.9, 2.8, 2.7]}, "chinchilla", "missing column 'tokens'"),
    ({"flops": [1e18, 2e18, 0.0, 8e18], "loss": [3, 2.9, 2.8, 2.7]}, "gpt4-loss", "column 'flops' row 3"),
    ({"flops": [1e18, 2e18, 4e18, 8e18], "loss": [3, -1, 2.8, 2.7]}, "gpt4-loss", "column 'loss' row 2"),
    ({"flops": [1e18, 2e18], "loss": [3, 2.9]}, "gpt4-loss", "2 rows but law 'gpt4-loss' has 3 parameters"),
    # as many rows as parameters: the law passes through every row, its intervals would have no width
    ({"flops": [1e18, 2e18, 4e18], "loss": [3, 2.9, 2.8]}, "gpt4-loss", "3 rows but .* need at least 4"),
    ({"flops": [1e18, 2e18], "loss": [3, 2.9]}, "power-loss", "2 rows but .* need at least 3"),
    # many runs at fewer sizes than parameters: the curve between them is not determined
    ({"flops": [1e18, 1e20] * 4, "loss": [3.0, 2.6, 2.99, 2.59, 2.98, 2.6, 3.01, 2.61]}, "gpt4-loss",
     "2 distinct values of flops but law 'gpt4-loss' has 3 parameters"),
    ({"flops": [1e18] * 4, "loss": [3, 2.9, 2.8, 2.7]}, "gpt4-loss", "all rows have the same flops"),
    ({"flops": [1e18, 2e18, 4e18, 8e18], "acc": [0.3, 0.4, 0.5, 0.6]}, "gpt4-loss", "no column 'loss'"),
])
def test_bad_input_gets_one_clear_error(table, law, message):
    with pytest.raises(TableError, match=message):
        fit_law(law, {k: np.array(v, float) for k, v in table.items()}, bootstrap=0)


def test_problem_records_are_checked(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"run": "a", "problem": "p1", "n": 10, "c": 11}) + "\n")
    with pytest.raises(TableError, match="line 1"):
        read_problems(path)
    path.write_text(json.dumps({"run": "a", "problem": "p1", "n": 10}) + "\n")
    with pytest.raises(TableError, match="lacks c"):
        read_problems(path)


@pytest.mark.parametrize("cell", [True, False])
def test_a_json_boolean_is_not_a_number(tmp_path, cell):
    # bool is an int to Python: `true` was read as compute 1.0 and fitted
    rows = [{"name": f"r{i}", "flops": 10.0 ** (18 + i), "loss": 3.0 - 0.1 * i, "final": True} for i in range(5)]
    rows[1]["flops"] = cell
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    table = read_table(tmp_path / "t.jsonl")
    assert table[0]["final"] is True  # a flag stays a flag (two-step's `final` column)
    with pytest.raises(TableError, match=f"column 'flops' row 2 \\(name 'r1'\\): '{json.dumps(cell)}' is not a number"):
        fit_law("gpt4-loss", table, bootstrap=0)
    with pytest.raises(TableError, match="column 'flops' row 2: 'True' is not a number"):
        fit_law("gpt4-loss", {"flops": np.array([1e18, True, 1e20, 1e21], dtype=object),
                              "loss": np.array([3.0, 2.9, 2.8, 2.7])}, bootstrap=0)


def test_a_folder_given_as_a_table_is_called_a_folder(tmp_path):
    from augury.scaling.tables import read_problems

    for read in (read_table, read_problems):
        with pytest.raises(TableError, match=f"{tmp_path} is a folder, not a"):
            read(tmp_path)
        with pytest.raises(TableError, match="no such file"):
            read(tmp_path / "missing.csv")


def test_a_run_listed_twice_is_refused_naming_both_rows():
    # the same run pasted twice (same name, same inputs, same loss): the bootstrap would count it as two runs and
    # narrow the interval as if the table had more data
    flops = np.geomspace(1e18, 1e20, 6)
    loss = 30 * flops ** -0.05 * np.exp(0.01 * np.random.default_rng(0).standard_normal(6))
    rows = [{"name": f"r{i}", "flops": float(f), "loss": float(v)} for i, (f, v) in enumerate(zip(flops, loss))]
    with pytest.raises(TableError, match=r"rows 3 and 7 .*'r2'"):
        fit_law("power-loss", rows + [dict(rows[2])], bootstrap=0)
    # replicates (their own names, or the same name with a different result) are runs
    fit_law("power-loss", rows + [{**rows[2], "name": "r2-rerun"}], bootstrap=0)
    fit_law("power-loss", rows + [{**rows[2], "loss": rows[2]["loss"] * 1.01}], bootstrap=0)


def test_a_row_repeated_in_a_table_without_names_is_refused():
    # with no `name` column nothing tells a pasted-twice row from a run: it was fitted as two runs, narrowing the
    # intervals as if the table had more data
    flops = np.geomspace(1e18, 1e20, 6)
    loss = 30 * flops ** -0.05 * np.exp(0.01 * np.random.default_rng(0).standard_normal(6))
    rows = [{"flops": float(f), "loss": float(v)} for f, v in zip(flops, loss)]
    with pytest.raises(TableError, match=r"rows 3 and 7 are the same .*no 'name' column"):
        fit_law("power-loss", rows + [dict(rows[2])], bootstrap=0)
    with pytest.raises(TableError, match=r"rows 3 and 7"):  # a dict of columns alike
        fit_law("power-loss", {"flops": np.append(flops, flops[2]), "loss": np.append(loss, loss[2])}, bootstrap=0)
    fit_law("power-loss", rows + [{**rows[2], "loss": rows[2]["loss"] * 1.01}], bootstrap=0)  # a replicate
