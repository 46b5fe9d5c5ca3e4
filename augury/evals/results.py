"""Aggregate scored samples into lm-evaluation-harness's results shape; write results, samples, plots, a table.

`results_<date>.json` has the keys lm-evaluation-harness writes: `results` ({task: {"acc,none": ...,
"acc_stderr,none": ..., "alias": ...}}, groups included, members listed after their group), `groups`,
`group_subtasks`, `configs`, `versions`, `n-shot`, `higher_is_better`, `n-samples` (`original`: the task's
records, `effective`: those scored after --limit, with augury's `errors` count of samples whose endpoint requests
failed and `resumed` count), `config` (the model), `git_hash`, `date` and timings.
`samples_<task>_<date>.jsonl` holds one scored record per sample. Multiple-choice tasks also get
`calibration_<task or group>_<date>.png` (reliability diagram) and an `ece,none` value.

    results = build_results(configs, scored, registry, model_config, num_fewshot, limit, chat, started, out, date)
    write_outputs(results, scored, out, date); print(markdown_table(results))

This is the last stage of `augury eval` (augury/evals/cli.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from augury.evals import metrics as M
from augury.evals.calibration import expected_calibration_error, reliability_diagram
from augury.evals.fewshot import FEWSHOT_SEED
from augury.evals.prompts import effective_fewshot
from augury.evals.taskconfig import TaskConfig, TaskRegistry
from augury.io import atomic_write_json, atomic_write_text, git_hash, package_versions, to_jsonable

# the safety rates of wrong behaviour (augury.safety.evaluation) are lower-is-better too
LOWER_IS_BETTER = {"word_perplexity", "byte_perplexity", "bits_per_byte", "ece", "incorrect_rate",
                   "incorrect_rate_strmatch", "disallowed_rate"}
# refusing is right only on harmful prompts: on a task or group whose prompts are all safe it is over-refusal
REFUSAL_RATES = {"refusal_rate", "refusal_rate_strmatch", "desired_refusal_rate"}


def higher_is_better(metric: str, kinds: list[str] | None = None) -> bool:
    """lm-eval's direction of a metric; `kinds` are a graded task's (or group's) prompt kinds."""
    if metric in LOWER_IS_BETTER:
        return False
    return not (metric in REFUSAL_RATES and kinds and set(kinds) == {"safe"})


def task_metrics(cfg: TaskConfig, samples: list[dict]) -> dict[str, Any]:
    """{"metric,none": value, "metric_stderr,none": stderr} for one task's scored samples."""
    out: dict[str, Any] = {}
    if not samples:
        return out
    if cfg.kind == "perplexity":
        agg = M.perplexity_metrics([s["loglikelihood"] for s in samples], [s["words"] for s in samples],
                                   [s["bytes"] for s in samples])
        for m in cfg.metrics:
            out[f"{m},none"] = agg[m]
            out[f"{m}_stderr,none"] = "N/A"
        return out
    for m in cfg.metrics:
        if m == "ece":
            out["ece,none"] = expected_calibration_error([s["confidence"] for s in samples],
                                                         [s["acc"] for s in samples])
            continue
        values = [float(s[m]) for s in samples]
        out[f"{m},none"] = sum(values) / len(values)
        out[f"{m}_stderr,none"] = M.mean_stderr(values)
    return out


def group_metrics(members: list[str], per_task: dict[str, dict], sizes: dict[str, int]) -> dict[str, Any]:
    """Size-weighted means and pooled standard errors over member tasks (lm-eval's weight_by_size)."""
    out: dict[str, Any] = {}
    # Every member's metrics, not the first member's: one whose samples all failed has none.
    keys = list(dict.fromkeys(k for t in members for k in per_task[t]
                              if k.endswith(",none") and "_stderr" not in k and k != "ece,none"))
    for key in keys:
        have = [t for t in members if isinstance(per_task[t].get(key), float)]
        if not have:
            continue
        n = [sizes[t] for t in have]
        out[key] = sum(per_task[t][key] * s for t, s in zip(have, n)) / sum(n)
        se_key = key.replace(",none", "_stderr,none")
        ses = [per_task[t].get(se_key) for t in have]
        # lm-eval writes "N/A" when any member's stderr is not a number (a one-sample task, a perplexity)
        out[se_key] = M.pooled_stderr(ses, n) if all(isinstance(s, float) for s in ses) else "N/A"
    return out


def _leaves(registry: TaskRegistry, name: str) -> list[str]:
    if name not in registry.groups:
        return [name]
    return [t for m in registry.groups[name] for t in _leaves(registry, m)]


def _bottom_up(groups: dict[str, list[str]]) -> list[str]:
    """Group names with every member group before the group that holds it."""
    order: list[str] = []

    def visit(g: str) -> None:
        if g not in order:
            for m in groups[g]:
                if m in groups:
                    visit(m)
            order.append(g)

    for g in groups:
        visit(g)
    return order


def build_results(configs: Sequence[TaskConfig], scored: dict[str, dict], registry: TaskRegistry,
                  model_config: dict, num_fewshot: int | None, limit: int | None, chat: bool,
                  started: float, out_dir: Path, date: str, fewshot_seed: int = FEWSHOT_SEED) -> dict[str, Any]:
    by_name = {c.task: c for c in configs}
    per_task = {name: task_metrics(by_name[name], s["samples"]) for name, s in scored.items()}
    sizes = {name: len(s["samples"]) for name, s in scored.items()}
    groups = registry.groups_over(set(scored))
    top_groups = [g for g in groups if not any(g in members for members in groups.values())]
    results: dict[str, Any] = {}
    group_results: dict[str, Any] = {}
    placed: set[str] = set()

    # Aliases are the plain names, as lm-eval 0.4.13 writes them: readers (its make_table, markdown_table here)
    # indent members by `group_subtasks`. Each group comes before its members.
    def place(name: str) -> None:
        if name in groups:
            leaves = _leaves(registry, name)
            entry = {"alias": name, **group_metrics(leaves, per_task, sizes)}
            mc = [s for t in leaves if by_name[t].kind == "multiple_choice" for s in scored[t]["samples"]]
            if mc:
                entry["ece,none"] = expected_calibration_error([s["confidence"] for s in mc],
                                                               [s["acc"] for s in mc])
            results[name] = group_results[name] = entry
            for member in groups[name]:
                place(member)
        else:
            results[name] = {"alias": name, **per_task[name]}
        placed.add(name)

    for g in top_groups:
        place(g)
    for name in scored:
        if name not in placed:
            place(name)
    _plots(configs, scored, groups, top_groups, registry, out_dir, date)
    safety = _safety(configs, scored, groups, registry)
    n_shot = {c.task: effective_fewshot(c, num_fewshot) for c in configs}
    # lm-eval 0.4.13 (_propagate_num_fewshot): a group has the n-shot its direct members share, none when they
    # differ; members first, so a group of groups sees its categories' values.
    for g in _bottom_up(groups):
        values = {n_shot[m] for m in groups[g] if m in n_shot}
        if len(values) == 1:
            n_shot[g] = values.pop()
    higher = {name: {k.split(",")[0]: higher_is_better(k.split(",")[0], safety.get(name, {}).get("kinds"))
                     for k in results[name] if k.endswith(",none") and "_stderr" not in k} for name in results}
    return {
        "results": results,
        "groups": group_results,
        "group_subtasks": {g: list(m) for g, m in groups.items()} | {t: [] for t in scored if t not in groups},
        "configs": {c.task: c.to_dict() for c in configs},
        # a group's version is its metadata's in lm-eval, "N/A" without one; augury's groups carry none
        "versions": {c.task: c.version for c in configs} | dict.fromkeys(groups, "N/A"),
        "n-shot": n_shot,
        "higher_is_better": higher,
        # lm-eval's meaning: original = the task's records, effective = those scored (after --limit).
        "n-samples": {name: {"original": s["original"], "effective": len(s["samples"]), "errors": s["errors"],
                             "resumed": s["resumed"]} for name, s in scored.items()},
        "config": {**model_config, "limit": limit, "num_fewshot": num_fewshot, "apply_chat_template": chat,
                   "fewshot_seed": fewshot_seed},
        **({"safety": safety} if safety else {}),
        "git_hash": git_hash(),
        "date": started,
        "pretty_env_info": package_versions(),
        "start_time": started,
        "end_time": time.time(),
        "total_evaluation_time_seconds": str(time.time() - started),
    }


def _safety(configs, scored, groups, registry) -> dict:
    """Graded tasks (and groups made only of them): rates per category with Wilson 95% intervals."""
    from augury.evals.graded import safety_summary

    by_name = {c.task: c for c in configs}
    out = {c.task: safety_summary(c, scored[c.task]["samples"]) for c in configs
           if c.kind == "graded" and scored[c.task]["samples"]}
    for g in groups:
        leaves = _leaves(registry, g)
        if all(by_name[t].kind == "graded" for t in leaves):
            metrics = [m for m in by_name[leaves[0]].metrics if all(m in by_name[t].metrics for t in leaves)]
            samples = [s for t in leaves for s in scored[t]["samples"]]
            if samples:
                summary = safety_summary(by_name[leaves[0]], samples, metrics)
                summary["categories"] = {}
                out[g] = summary
    return out


def _plots(configs, scored, groups, top_groups, registry, out_dir: Path, date: str) -> None:
    """One reliability diagram per top-level group and per ungrouped multiple-choice task."""
    by_name = {c.task: c for c in configs}
    in_group = {t for g in top_groups for t in _leaves(registry, g)}
    targets = {g: _leaves(registry, g) for g in top_groups}
    targets |= {t: [t] for t in scored if t not in in_group}
    for name, tasks in targets.items():
        mc = [s for t in tasks if by_name[t].kind == "multiple_choice" and "ece" in by_name[t].metrics
              for s in scored[t]["samples"]]
        if mc:
            reliability_diagram([s["confidence"] for s in mc], [s["acc"] for s in mc],
                                out_dir / f"calibration_{name}_{date}.png", title=name)


def write_outputs(results: dict, scored: dict[str, dict], out_dir: Path, date: str) -> Path:
    """samples_<task>_<date>.jsonl per task, then results_<date>.json last (its presence means complete)."""
    for name, s in scored.items():
        lines = "".join(json.dumps(to_jsonable(r), ensure_ascii=False) + "\n" for r in s["samples"])
        atomic_write_text(out_dir / f"samples_{name}_{date}.jsonl", lines)
    path = out_dir / f"results_{date}.json"
    atomic_write_json(path, results)
    return path


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _depths(group_subtasks: dict[str, list[str]]) -> dict[str, int]:
    """How deep each task or group sits under the top-level groups (0 for those and for ungrouped tasks)."""
    depth: dict[str, int] = {}

    def visit(name: str, d: int) -> None:
        depth[name] = d
        for member in group_subtasks.get(name, []):
            visit(member, d + 1)

    members = {m for ms in group_subtasks.values() for m in ms}
    for name in group_subtasks:
        if name not in members:
            visit(name, 0)
    return depth


def markdown_table(results: dict) -> str:
    """lm-eval-style table: one row per task/group and metric, with stderr and sample/error counts; a task or
    group with no scored sample gets one row saying it was not measured."""
    lines = ["| Tasks | Version | n-shot | Metric | Value | | Stderr | N | Errors |",
             "|---|---|---|---|---|---|---|---|---|"]
    depths = _depths(results.get("group_subtasks", {}))
    for name, entry in results["results"].items():
        depth = depths.get(name, 0)
        shown = ("  " * (depth - 1) + " - " if depth else "") + entry.get("alias", name)
        counts = results["n-samples"].get(name, {})
        if not any(k.endswith(",none") and "_stderr" not in k for k in entry):
            # no sample scored (every one failed): a row that says so, not a task missing from the table
            lines.append(f"| {shown} | {results['versions'].get(name, '')} | {results['n-shot'].get(name, '')} | "
                         f"— | not measured | | | {counts.get('effective', '')} | {counts.get('errors', '')} |")
            continue
        for key, value in entry.items():
            if not key.endswith(",none") or "_stderr" in key:
                continue
            metric = key.split(",")[0]
            se = entry.get(f"{metric}_stderr,none", "")
            up = results.get("higher_is_better", {}).get(name, {}).get(metric, metric not in LOWER_IS_BETTER)
            arrow = "↑" if up else "↓"
            lines.append(f"| {shown} | {results['versions'].get(name, '')} | "
                         f"{results['n-shot'].get(name, '')} | {metric} | {_fmt(value)} | {arrow} | "
                         f"{'± ' + _fmt(se) if isinstance(se, float) else se} | "
                         f"{counts.get('effective', '')} | {counts.get('errors', '')} |")
    return "\n".join(lines)
