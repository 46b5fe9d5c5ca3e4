"""The report of `augury rl-demo`: held-out reward and accuracy of the base, SFT and RL models, and their curves.

    results = write_report(Path("runs/rl-demo-s0"), cfg)   # writes report.md and curves.png; returns the figures

Everything comes from the run's own records: eval/base.json and eval/sft.json (the models before RL) and
rl/metrics.jsonl (per step: the training reward of the rollouts; every `rl.eval_every` steps: the held-out reward
and accuracy with 95% Wilson intervals). The RL model's figures are those of the last step.
"""

from __future__ import annotations

import json
from pathlib import Path

from augury.io import atomic_write_bytes, atomic_write_text


def rise_p_value(before: float, after: float, n: int) -> float:
    """One-sided p-value that a rate rose from `before` to `after`, both measured on the same `n` problems.

    A pooled two-proportion z-test: it ignores the pairing (same problems, same sampling seeds), which makes it
    conservative, so a small p is a real rise and a large one means the seed cannot tell the models apart.
    """
    from scipy.stats import norm

    pooled = (before + after) / 2
    spread = (2 * pooled * (1 - pooled) / n) ** 0.5
    if spread == 0:
        return 0.5 if after == before else (0.0 if after > before else 1.0)
    return float(norm.sf((after - before) / spread))


def _records(path: Path) -> list[dict]:
    from augury.align.data import read_jsonl

    return [r for r in read_jsonl(path) if r]


def held_out_curve(rl_metrics: list[dict], sft: dict) -> list[dict]:
    """The held-out records by RL step, starting with the SFT model at step 0 (a resumed step counts once)."""
    by_step = {0: sft}
    for r in rl_metrics:
        if "heldout_reward" in r:
            by_step[r["step"]] = {**r}
    return [by_step[s] for s in sorted(by_step)]


def plot_curves(curve: list[dict], train: list[dict], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in curve]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, label, color in (("heldout_reward", "held-out reward (sampled)", "tab:blue"),
                              ("heldout_accuracy", "held-out accuracy (greedy)", "tab:orange")):
        ax.plot(steps, [r[key] for r in curve], "o-", color=color, label=label)
        ax.fill_between(steps, [r[f"{key}_ci95"][0] for r in curve], [r[f"{key}_ci95"][1] for r in curve],
                        color=color, alpha=0.15)
    if train:
        ax.plot([r["step"] for r in train], [r["reward"] for r in train], color="gray", alpha=0.5, lw=1,
                label="training rollouts' reward")
    ax.set_xlabel("RL step (0 = the SFT model)")
    ax.set_ylabel("exact-answer reward / accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _pct(record: dict, key: str) -> str:
    lo, hi = record[f"{key}_ci95"]
    return f"{100 * record[key]:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def write_report(out: Path, cfg) -> dict:
    base = json.loads((out / "eval" / "base.json").read_text())
    sft = json.loads((out / "eval" / "sft.json").read_text())
    metrics = _records(out / "rl" / "metrics.jsonl")
    curve = held_out_curve(metrics, sft)
    rl = curve[-1]
    if rl["step"] == 0:
        raise ValueError(f"{out / 'rl' / 'metrics.jsonl'} has no held-out evaluation")
    train = [r for r in metrics if "reward" in r]
    plot_curves(curve, train, out / "curves.png")
    stages = {r["stage"]: r["seconds"] for r in _records(out / "metrics.jsonl") if "stage" in r}
    t, r = cfg.task, cfg.rl
    measures = ("heldout_reward", "heldout_accuracy")
    improved = {k: rl[k] > sft[k] for k in measures}
    p_values = {k: rise_p_value(sft[k], rl[k], sft["heldout_n"]) for k in measures}
    lines = [
        "# augury rl-demo: SFT → RL on doctest arithmetic", "",
        f"Seed {cfg.seed}. Task: `>>> a {t.ops[0]} b` → the value, 0 ≤ a, b ≤ {t.max_operand}; reward 1 for the "
        f"exact answer alone, else 0. Held out: {t.held_out:.0%} of the problems by unordered operand pair, "
        f"never seen in SFT or RL; {sft['heldout_n']} of them evaluated. RL: {r.algorithm}, {r.steps} steps × "
        f"{r.prompts_per_step} prompts × {r.num_generations} completions, lr {r.lr:g}, kl_coef {r.kl_coef:g}, "
        f"temperature {r.temperature:g}.", "",
        f"| model | held-out reward (sampled, T={r.temperature:g}) [95% CI] | held-out accuracy (greedy) [95% CI] |",
        "|---|---:|---:|",
        f"| base (pretrained) | {_pct(base, 'heldout_reward')} | {_pct(base, 'heldout_accuracy')} |",
        f"| SFT | {_pct(sft, 'heldout_reward')} | {_pct(sft, 'heldout_accuracy')} |",
        f"| RL (step {rl['step']}) | {_pct(rl, 'heldout_reward')} | {_pct(rl, 'heldout_accuracy')} |", "",
        f"RL vs SFT: reward {100 * (rl['heldout_reward'] - sft['heldout_reward']):+.1f} points, accuracy "
        f"{100 * (rl['heldout_accuracy'] - sft['heldout_accuracy']):+.1f} points "
        f"({'both rose' if all(improved.values()) else 'NOT both rose'}; one-sided p = "
        f"{p_values['heldout_reward']:.3f} and {p_values['heldout_accuracy']:.3f}, "
        f"{'both' if max(p_values.values()) < 0.05 else 'not both'} distinguishable from noise at 0.05).", "",
        "![held-out reward and accuracy over RL steps](curves.png)", "",
        "| RL step | held-out reward | held-out accuracy |", "|---:|---:|---:|",
        *[f"| {c['step']} | {100 * c['heldout_reward']:.1f}% | {100 * c['heldout_accuracy']:.1f}% |" for c in curve],
        "", "Stage wall-clock seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()) + ".",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    keep = ("heldout_reward", "heldout_reward_ci95", "heldout_accuracy", "heldout_accuracy_ci95", "heldout_n")
    return {"seed": cfg.seed, "base": {k: base[k] for k in keep}, "sft": {k: sft[k] for k in keep},
            "rl": {"step": rl["step"], **{k: rl[k] for k in keep}}, "improved": improved,
            "rise_p_value": p_values,
            "curve": [{k: c[k] for k in ("step", "heldout_reward", "heldout_accuracy")} for c in curve],
            "stage_seconds": stages}
