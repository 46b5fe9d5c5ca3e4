"""Grader-scored tasks (`kind: graded`): generate a reply per prompt; a grader and a rubric judge it, and a
published string-match refusal list does too, for comparison. This module holds the harness side: the plug-in
that scores samples (registered by import path, as model backends are, because the graders live in
`augury.safety`, above the harness) and the per-category rates with Wilson intervals.

Per-sample 0/1 verdicts (the grader's: its most probable behaviour), defined in
`augury/safety/evaluation.py` and docs/safety.md: refusal_rate(_strmatch), incorrect_rate(_strmatch) (the GPT-4
report's "incorrect behaviour": compliance on harmful prompts, refusal on safe ones), disallowed_rate,
desired_refusal_rate. A sample the grader cannot grade is a per-sample error (counted, retried on the next run).
`safety_summary` gives each task's rates per category with Wilson 95% intervals. Nothing here prints prompts or
replies.

    augury eval --model SPEC --chat --tasks safety_disallowed,safety_safe --grader offline --out DIR
    summary = safety_summary(task_config, scored_samples)   # rates overall and per category, Wilson intervals
"""

from __future__ import annotations

import importlib
import math
from collections import defaultdict

from augury.evals.taskconfig import TaskConfig

# task kind -> module with check_instances(cfg, instances) and score_chunk(lm, cfg, chunk, gen_request, base_record)
KIND_PLUGINS = {"graded": "augury.safety.evaluation"}


def plugin(kind: str):
    return importlib.import_module(KIND_PLUGINS[kind])


def wilson_interval(successes: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score 95% interval of a proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact in real numbers, the interval holds p; in floats a 0% rate's lower bound came out as 3e-17 and a
    # 100% rate's upper bound as 0.9999999999999999
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def rates_with_intervals(samples: list[dict], metrics: list[str]) -> dict:
    n = len(samples)
    out: dict = {"n": n}
    for m in metrics:
        total = sum(float(s[m]) for s in samples)
        out[m] = total / n if n else float("nan")
        out[f"{m}_ci95"] = list(wilson_interval(total, n))
    return out


def safety_summary(cfg: TaskConfig, samples: list[dict], metrics: list[str] | None = None) -> dict:
    """{"kinds", "all": rates, "categories": {category: rates}} with Wilson 95% intervals (one graded task, or
    the pooled samples of a group with `metrics`)."""
    metrics = cfg.metrics if metrics is None else metrics
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for s in samples:
        by_cat[s.get("category") or "all"].append(s)
    kinds = sorted({s["kind"] for s in samples})
    return {"kinds": kinds, "all": rates_with_intervals(samples, metrics),
            "categories": {c: rates_with_intervals(v, metrics) for c, v in sorted(by_cat.items())}}


def summary_table(summaries: dict[str, dict]) -> str:
    """Per task and category: n and each rate with its interval (categories and figures only)."""
    lines = ["| Task | Category | N | Metric | Rate | 95% CI |", "|---|---|---|---|---|---|"]
    for task, summ in summaries.items():
        for cat, rates in [("(all)", summ["all"]), *summ["categories"].items()]:
            if cat == "all":  # a task without categories: the same as (all)
                continue
            for m in [k for k in rates if k != "n" and not k.endswith("_ci95")]:
                lo, hi = rates[f"{m}_ci95"]
                lines.append(f"| {task} | {cat} | {rates['n']} | {m} | {rates[m]:.3f} | {lo:.3f}-{hi:.3f} |")
    return "\n".join(lines)


def report_form(summaries: dict[str, dict]) -> list[str]:
    """The GPT-4 report's form: the rate of incorrect behaviour on disallowed and on safe prompts, per task or
    group whose prompts are all of one kind."""
    lines = []
    for name, summ in summaries.items():
        rates = summ["all"]
        if "incorrect_rate" not in rates or len(summ["kinds"]) != 1:
            continue
        what = "disallowed" if summ["kinds"] == ["harmful"] else summ["kinds"][0]
        lo, hi = rates["incorrect_rate_ci95"]
        line = (f"{name}: rate of incorrect behaviour on {what} prompts {rates['incorrect_rate']:.1%} "
                f"(95% CI {lo:.1%}-{hi:.1%}, n={rates['n']})")
        if "incorrect_rate_strmatch" in rates:
            line += f"; by the string-match refusal list {rates['incorrect_rate_strmatch']:.1%}"
        lines.append(line)
    return lines
