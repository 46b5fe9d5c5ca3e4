"""Loader for the OLMo ladder data (Bhagia et al. 2024; allenai/OLMo-ladder, Apache-2.0), laid out as
DIR/olmo-ladder/{ladder-runs,figures}/*.csv (see its SOURCE.md).

Ladder runs are `SIZE-MULTxC` (190M..3B, MULT x 20 tokens per parameter); every run's learning rate decays to
its final value, so the last logged row is the run's result. Targets: `peteish7` (7B, ~4T tokens) and
`peteish13` (13B, ~5T tokens). Rows come out as runs-table dicts (see augury/scaling/tables.py):

    name, size, mult, rerun, step, params, tokens, flops, logged_flops, loss (C4 validation CE),
    <task>_bpb, <task>_acc for the 8 tasks of the paper's figures/chained_main.csv

`params` is the parameter count the ladder paper uses (OLMo `num_params(include_embedding=False)`: every
parameter except the input-embedding lookup, i.e. every parameter that does matrix-multiply work per token;
values from OLMo-ladder's MODEL_PARAMS). `flops` = 6 * params * tokens; `logged_flops` is the run's own
`total_training_Gflops` * 1e9 when logged.

    from augury.scaling.olmo import load_ladder, load_target
    rows = load_ladder(Path(data_dir), sizes=("190M", "370M", "760M", "1B"))
    target = load_target(Path(data_dir), "13B")
    final, checkpoints = two_step_data(Path(data_dir))  # the ladder paper's two-step data preparation
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np

from augury.scaling.tables import TableError

# Parameters excluding the input embedding (OLMo-ladder src/scaling/utils.py MODEL_PARAMS).
PARAMS = {"190M": 190354176, "370M": 371262464, "760M": 758220288, "1B": 1279395840, "3B": 3169537280,
          "7B": 6887575552, "13B": 13202396160}
C4 = "eval/c4_en-validation/CrossEntropyLoss"
# MMLU test questions per category (the paper's mmlu_avg weights categories by size).
MMLU_TEST = {"stem": 3018, "humanities": 4705, "social_sciences": 3077, "other": 3242}
# figures/chained_main.csv task name -> (column stem of the bpb and accuracy columns)
TASKS = {
    "hellaswag_val_5shot": "hellaswag_val", "arc_challenge_test_5shot": "arc_challenge_test",
    "arc_easy_test_5shot": "arc_easy_test", "piqa_val_5shot": "piqa_val", "csqa_val_5shot": "csqa_val",
    "socialiqa_val_5shot": "socialiqa_val", "openbookqa_test_5shot": "openbookqa_test",
}
MMLU_TASK = "mmlu_avg_test_5shot"
TASK_NAMES = [MMLU_TASK, *TASKS]
_RUN = re.compile(r"^(?P<size>\d+[MB])-(?P<mult>[\d.]+)xC(?P<rerun>-rerun)?$")


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        raise TableError(f"{path}: no such file (expected the OLMo ladder data under DIR/olmo-ladder)")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _float(row: dict, col: str, where: str) -> float:
    try:
        return float(row[col])
    except (KeyError, TypeError, ValueError):
        raise TableError(f"{where}: column {col!r} missing or not a number") from None


def _task_values(row: dict, where: str) -> dict[str, float]:
    out = {}
    total = sum(MMLU_TEST.values())
    columns = (("bpb", "eval/downstream_bpb/{}_rc_5shot_bpb"), ("acc", "eval/downstream/{}_rc_5shot_len_norm"))
    for kind, col_fmt in columns:
        out[f"{MMLU_TASK}_{kind}"] = sum(_float(row, col_fmt.format(f"mmlu_{c}_test"), where) * n
                                         for c, n in MMLU_TEST.items()) / total
        for task, stem in TASKS.items():
            out[f"{task}_{kind}"] = _float(row, col_fmt.format(stem), where)
    return out


def load_ladder(data_dir: Path, sizes=("190M", "370M", "760M", "1B"), checkpoints: str = "final") -> list[dict]:
    """Ladder runs of the given sizes: their final row (`checkpoints="final"`) or every logged row ("all")."""
    run_dir = Path(data_dir) / "olmo-ladder" / "ladder-runs"
    files = sorted(p for p in run_dir.glob("*xC*.csv") if _RUN.match(p.stem) and _RUN.match(p.stem)["size"] in sizes)
    if not files:
        raise TableError(f"{run_dir}: no ladder runs of sizes {', '.join(sizes)}")
    rows = []
    for path in files:
        m = _RUN.match(path.stem)
        table = _read(path)
        picked = table[-1:] if checkpoints == "final" else table
        for i, raw in enumerate(picked):
            where = f"{path.name} row {len(table) if checkpoints == 'final' else i + 1}"
            tokens = _float(raw, "throughput/total_tokens", where)
            if tokens <= 0:
                continue  # the step-0 evaluation: no training yet
            row = {"name": path.stem, "size": m["size"], "mult": float(m["mult"]), "rerun": bool(m["rerun"]),
                   "step": _float(raw, "_step", where), "params": float(PARAMS[m["size"]]), "tokens": tokens,
                   "flops": 6.0 * PARAMS[m["size"]] * tokens, "loss": _float(raw, C4, where)}
            if raw.get("throughput/total_training_Gflops"):
                row["logged_flops"] = _float(raw, "throughput/total_training_Gflops", where) * 1e9
            row.update(_task_values(raw, where))
            rows.append(row)
    return rows


def _trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each value and up to `window - 1` values before it (shorter windows at the start)."""
    c = np.cumsum(values, dtype=float)
    out = c.copy()
    out[window:] = c[window:] - c[:-window]
    return out / np.minimum(np.arange(1, len(values) + 1), window)


def two_step_data(data_dir: Path, sizes=("190M", "370M", "760M", "1B"), mults=(1.0, 2.0, 5.0, 10.0),
                  reruns: bool = False, window: int = 5, skip_frac: float = 0.1) -> tuple[list[dict], list[dict]]:
    """(final_rows, checkpoint_rows) for the two-step method as the ladder paper prepares them
    (OLMo-ladder src/scaling/utils.py, get_step1_data_by_name / get_step2_data_by_name, with the paper's
    `--moving_avg 5 --skip_perc 0.1`; runs of src/scripts/paper/configs/final.json).

    Runs: the given sizes at the given Chinchilla multiples; reruns excluded unless `reruns`.
    final_rows (step 1): one per run, its last row with every task column replaced by the mean of its last
    `window` evaluations (evaluation noise; D stays the last row's tokens).
    checkpoint_rows (step 2): every evaluation of every run after the first `skip_frac` of them (rounded up),
    each task column a trailing mean over `window` evaluations (taken after the skip, as the paper does).
    """
    rows = load_ladder(data_dir, sizes=sizes, checkpoints="all")
    by_run: dict[str, list[dict]] = {}
    for r in rows:
        if r["mult"] in mults and (reruns or not r["rerun"]):
            by_run.setdefault(r["name"], []).append(r)
    if not by_run:
        raise TableError(f"no ladder runs of sizes {sizes} at multiples {mults}")
    cols = [k for k in rows[0] if k.endswith("_bpb") or k.endswith("_acc")]
    final, checkpoints = [], []
    for run in by_run.values():
        last = dict(run[-1])
        last.update({k: float(np.mean([r[k] for r in run[-window:]])) for k in cols})
        final.append(last)
        kept = run[math.ceil(skip_frac * len(run)):]  # early checkpoints: far from the fitted regime, noisy
        smooth = {k: _trailing_mean(np.array([r[k] for r in kept]), window) for k in cols}
        for i, r in enumerate(kept):
            checkpoints.append({**r, **{k: float(v[i]) for k, v in smooth.items()}})
    return final, checkpoints


def load_target(data_dir: Path, target: str) -> dict:
    """The target's fully decayed final evaluation, as a runs-table row (plus `pre_anneal_loss` for 7B).

    7B: `peteish7_eval_anneal.csv` (after its final learning-rate anneal; tokens from its total_tokens);
    its last pre-anneal row (`peteish7_eval_full.csv`) is kept as `pre_anneal_loss` for reference.
    13B: the last row of `peteish13_eval_final.csv`; tokens = step * batch_size_in_tokens.
    """
    run_dir = Path(data_dir) / "olmo-ladder" / "ladder-runs"
    if target == "7B":
        path = run_dir / "peteish7_eval_anneal.csv"
        raw = _read(path)[-1]
        tokens = _float(raw, "throughput/total_tokens", path.name)
        extra = {"pre_anneal_loss": _float(_read(run_dir / "peteish7_eval_full.csv")[-1], C4, "peteish7_eval_full.csv")}
    elif target == "13B":
        path = run_dir / "peteish13_eval_final.csv"
        raw = _read(path)[-1]
        tokens = _float(raw, "_step", path.name) * _float(raw, "batch_size_in_tokens", path.name)
        extra = {}
    else:
        raise TableError(f"unknown OLMo target {target!r} (7B or 13B)")
    row = {"name": f"peteish{target[:-1]}", "size": target, "params": float(PARAMS[target]), "tokens": tokens,
           "flops": 6.0 * PARAMS[target] * tokens, "loss": _float(raw, C4, path.name),
           "batch_size_in_tokens": _float(raw, "batch_size_in_tokens", path.name), **extra}
    row.update(_task_values(raw, path.name))
    return row


def load_paper_predictions(data_dir: Path, figure: str = "chained_main") -> dict[str, dict]:
    """The paper's own predicted-vs-actual values: {task: {actual, predicted, rel_error}}."""
    rows = _read(Path(data_dir) / "olmo-ladder" / "figures" / f"{figure}.csv")
    return {r["Task"]: {"actual": float(r["Actual"]), "predicted": float(r["Pred"]),
                        "rel_error": abs(float(r["Rel Error"]))} for r in rows}
