"""Runs tables and per-problem results: reading, checking and selecting rows.

A runs table is CSV or JSONL with one row per training run (or checkpoint), columns such as
`name, params, tokens, flops, loss` plus any metric columns. When `flops` is missing (the column, or a cell)
it is filled with 6 * params * tokens (Kaplan et al. 2020's forward+backward estimate, embeddings included
as the table's `params` counts them). Per-problem results are JSONL records `{run, problem, n, c}`: n
samples of `problem` drawn from `run`, c of them passed.

    rows = read_table("runs.csv")
    keep = select(rows, "flops>2e21 and name!='bad'")
"""

from __future__ import annotations

import ast
import csv
import json
import operator
from pathlib import Path

import numpy as np

from augury.io import jsonl_objects


class TableError(ValueError):
    """Bad input in a table, expression or record: the message names the file, column or row."""


def _cell(value):
    """CSV cells: '' -> None, numbers -> float, anything else stays a string. A JSON true/false stays a bool: it is
    a flag (e.g. `final`), never the number 1 or 0 (bool is an int to Python)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def read_table(path: str | Path) -> list[dict]:
    """Rows of a CSV (header line) or JSONL runs table, with flops filled in where missing."""
    path = Path(path)
    if path.is_dir():
        raise TableError(f"{path} is a folder, not a CSV or JSONL table")
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    try:
        raw = _read_jsonl_rows(path) if path.suffix.lower() in (".jsonl", ".ndjson") else _read_csv_rows(path)
    except UnicodeDecodeError as err:
        raise TableError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}); "
                         f"save the table as UTF-8") from None
    if not raw:
        raise TableError(f"{path}: the table has no rows")
    rows = [{str(k).strip(): _cell(v) for k, v in r.items()} for r in raw]
    return fill_flops(rows)


def _read_csv_rows(path: Path) -> list[dict]:
    # utf-8-sig: a byte-order mark (as spreadsheet programs write) would otherwise stick to the first column name
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise TableError(f"{path}: empty table (no header line)")
        raw = []
        for i, r in enumerate(reader, 1):
            if None in r:  # more cells than the header names: which column they belong to is unknown
                raise TableError(f"{path}: row {i} (line {reader.line_num}) has {len(reader.fieldnames) + len(r[None])}"
                                 f" cells but the header names {len(reader.fieldnames)} columns")
            raw.append(r)
    return raw


def _read_jsonl_rows(path: Path) -> list[dict]:
    # Stricter than augury.io.read_jsonl: a runs table is typed or generated whole, not appended to by a
    # process that may be killed, so a broken last line is a lost run, not a torn write.
    return [row for _, row in jsonl_objects(path.read_text(encoding="utf-8"), str(path), TableError)]


def fill_flops(rows: list[dict]) -> list[dict]:
    """Set flops = 6 * params * tokens on rows that lack flops but have both params and tokens."""
    out = []
    for r in rows:
        r = dict(r)
        if r.get("flops") is None and isinstance(r.get("params"), float) and isinstance(r.get("tokens"), float):
            r["flops"] = 6.0 * r["params"] * r["tokens"]
        out.append(r)
    return out


def columns_from(data) -> dict[str, np.ndarray]:
    """Columns (float arrays, or object arrays for text) from rows or from a dict of columns."""
    if isinstance(data, dict):
        cols = {k: np.atleast_1d(np.asarray(v)) for k, v in data.items()}
        if "flops" not in cols and "params" in cols and "tokens" in cols:
            cols["flops"] = 6.0 * cols["params"].astype(float) * cols["tokens"].astype(float)
        return cols
    rows = fill_flops([{k: _cell(v) for k, v in r.items()} for r in data])
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    cols = {}
    for k in keys:
        vals = [r.get(k) for r in rows]
        if all(v is None or isinstance(v, float) for v in vals):
            cols[k] = np.array([np.nan if v is None else v for v in vals], dtype=float)
        else:
            cols[k] = np.array([_text(v) for v in vals], dtype=object)
    return cols


def _text(value) -> str:
    """A cell of a text column as the table spells it (JSON's true/false, not Python's True/False)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def law_inputs(law, cols: dict[str, np.ndarray], where: str = "table") -> dict[str, np.ndarray]:
    """The law's input columns as float arrays, checked: present, numeric, and > 0 where a log is taken."""
    out = {}
    for col in law.inputs:
        if col not in cols:
            hint = " (or params and tokens, from which flops = 6*params*tokens)" if col == "flops" else ""
            raise TableError(f"{where}: missing column {col!r} needed by law {law.name!r}{hint}")
        out[col] = numeric_column(cols, col, where, positive=col not in law.raw_inputs)
    return out


def numeric_column(cols: dict[str, np.ndarray], col: str, where: str = "table", positive: bool = True) -> np.ndarray:
    """Column `col` as floats; TableError naming the first row whose cell is not a (finite, and > 0 where a log is
    taken: `positive`) number."""
    arr = cols[col]
    vals = np.array([float(v) if _is_number(v) else np.nan for v in arr], dtype=float)
    ok = np.isfinite(vals) & (vals > 0) if positive else np.isfinite(vals)
    bad = np.flatnonzero(~ok)
    if not bad.size:
        return vals
    i = bad[0]
    cell = arr[i]
    row = f"row {i + 1}" + (f" (name {str(cols['name'][i])!r})" if "name" in cols and col != "name" else "")
    need = "a finite number > 0 (its log is taken)" if positive else "a finite number"
    if not _is_number(cell):
        what = "has no value" if cell is None or not str(cell).strip() else f"{str(cell)!r} is not a number"
    elif np.isnan(float(cell)):
        what = "has no value"
    else:
        what = f"{float(cell):g} must be {need}"
    raise TableError(f"{where}: column {col!r} {row}: {what}")


def _is_number(v) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return False
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


_OPS = {ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}


def parse_where(expr: str, columns) -> callable:
    """A row predicate from an expression such as `flops>2e21`, `params<=1e9 and name!='x'`, `not (a<1)`.

    Allowed: column names, numbers, quoted strings, comparisons (chains too), and/or/not, unary minus.
    Raises TableError naming an unknown column or an unsupported construct.
    """
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as err:
        raise TableError(f"cannot parse expression {expr!r}: {err.msg}") from None
    known = set(columns)

    def check(node):
        if isinstance(node, ast.Name) and node.id not in known:
            raise TableError(f"expression {expr!r}: unknown column {node.id!r}; columns: {sorted(known)}")
        allowed = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.Compare,
                   ast.Name, ast.Load, ast.Constant, *_OPS)
        if not isinstance(node, allowed):
            raise TableError(f"expression {expr!r}: {type(node).__name__} is not allowed (use comparisons, and/or/not)")
        for child in ast.iter_child_nodes(node):
            check(child)

    check(tree)

    def value(node, row):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return row.get(node.id)
        if isinstance(node, ast.UnaryOp):
            v = value(node.operand, row)
            return (not v) if isinstance(node.op, ast.Not) else -v
        if isinstance(node, ast.BoolOp):
            vals = (value(v, row) for v in node.values)
            return all(vals) if isinstance(node.op, ast.And) else any(vals)
        left = value(node.left, row)
        for op, comp in zip(node.ops, node.comparators):
            right = value(comp, row)
            if left is None or right is None:
                return False
            try:
                if not _OPS[type(op)](left, right):
                    return False
            except TypeError:
                raise TableError(f"expression {expr!r}: cannot compare {left!r} with {right!r}") from None
            left = right
        return True

    return lambda row: bool(value(tree.body, row))


def select(rows: list[dict], expr: str) -> list[bool]:
    """Mask of rows matching `expr`; an expression that selects nothing is an error."""
    keys = {k for r in rows for k in r}
    pred = parse_where(expr, keys)
    mask = [pred(r) for r in rows]
    if not any(mask):
        raise TableError(f"expression {expr!r} selects no rows (of {len(rows)})")
    return mask


def parse_assignments(text: str) -> dict[str, float]:
    """`flops=1e24,params=7e9,tokens=4e12` -> {name: float}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, val = part.partition("=")
        if not sep or not key.strip():
            raise TableError(f"--predict {text!r}: expected name=value pairs separated by commas, got {part!r}")
        try:
            out[key.strip()] = float(val)
        except ValueError:
            raise TableError(f"--predict {text!r}: {key.strip()}={val!r} is not a number") from None
    if not out:
        raise TableError(f"--predict {text!r}: no name=value pairs")
    return out


def read_problems(path: str | Path) -> list[dict]:
    """Per-problem records {run, problem, n, c} from JSONL, checked (see check_problems; errors name the line)."""
    path = Path(path)
    if path.is_dir():
        raise TableError(f"{path} is a folder, not a JSONL file of per-problem records")
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    try:
        numbered = jsonl_objects(path.read_text(encoding="utf-8"), str(path), TableError)
    except UnicodeDecodeError as err:
        raise TableError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") from None
    records = [rec for _, rec in numbered]
    return check_problems(records, str(path), lines=[n for n, _ in numbered])


def check_problems(records: list[dict], where: str = "records", lines: list[int] | None = None) -> list[dict]:
    """`records` if each is {run, problem, n, c} with a name for run and problem, whole sample counts
    n >= 1 and 0 <= c <= n, and one record per (run, problem); else TableError naming the record (its file line
    when `lines` gives them)."""
    seen: dict[tuple[str, str], str] = {}
    for i, rec in enumerate(records, 1):
        at = f"line {lines[i - 1]}" if lines else f"record {i}"
        missing = [k for k in ("run", "problem", "n", "c") if k not in rec]
        if missing:
            raise TableError(f"{where}: {at} lacks {', '.join(missing)} (need run, problem, n, c)")
        for key in ("run", "problem"):
            v = rec[key]
            if isinstance(v, bool) or not isinstance(v, (str, int)) or not str(v).strip():
                raise TableError(f"{where}: {at}: {key} must be a name (text or an integer), got {_spelled(v)}")
        n, c = rec["n"], rec["c"]
        if not (_count(n) and _count(c) and n >= 1 and c <= n):
            raise TableError(f"{where}: {at}: n and c are numbers of samples: need whole numbers with n >= 1 and "
                             f"0 <= c <= n, got n={_spelled(n)}, c={_spelled(c)}")
        pair = (str(rec["run"]), str(rec["problem"]))
        if pair in seen:
            raise TableError(f"{where}: {at} repeats run {pair[0]!r}, problem {pair[1]!r} of {seen[pair]}: give "
                             f"each run and problem one record (with more samples, add up their n and c)")
        seen[pair] = at
    if not records:
        raise TableError(f"{where}: no records")
    return records


def _spelled(v) -> str:
    """A record's value as JSON spells it (true, Infinity, "200"), as the user wrote it."""
    try:
        return json.dumps(v)
    except (TypeError, ValueError):
        return repr(v)


def _count(v) -> bool:
    """A whole number of samples >= 0: an int, or a float with no fraction (not a bool, not infinite)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return v >= 0 and (isinstance(v, int) or v.is_integer())


def run_compute(rows: list[dict], runs, where: str = "table") -> dict[str, float]:
    """Compute (flops, or 6 * params * tokens) of each of `runs` from a runs table's rows, keyed by the table's
    `name` (or `run`) column; TableError naming the row (counted as in the file) whose compute is not a number
    > 0, or a run the table gives twice."""
    cols = columns_from(rows)
    key = "name" if "name" in cols else "run" if "run" in cols else None
    if key is None:
        raise TableError(f"{where}: no column 'name' (or 'run'): the runs table names the runs of the records")
    if "flops" not in cols:
        raise TableError(f"{where}: no column 'flops' (or params and tokens, from which flops = 6*params*tokens): "
                         f"each run's compute")
    wanted, out = {str(r) for r in runs}, {}
    for i, (name, cell) in enumerate(zip(cols[key], cols["flops"])):
        # a whole number read from CSV is a float: run 7 of the records is row "7.0" of the table
        name = _text(name).removesuffix(".0") if isinstance(name, float) else _text(name)
        if name not in wanted:
            continue
        row = f"{where}: column 'flops' row {i + 1} ({key} {name!r})"
        if not _is_number(cell):
            raise TableError(f"{row}: " + (f"{str(cell)!r} is not a number" if str(cell).strip() else "has no value"))
        if np.isnan(float(cell)):
            raise TableError(f"{row}: has no value")
        if not (np.isfinite(float(cell)) and float(cell) > 0):
            raise TableError(f"{row}: {float(cell):g} must be a finite number > 0 (its log is taken)")
        if name in out:
            raise TableError(f"{row}: run {name!r} is given twice in the table")
        out[name] = float(cell)
    return out

