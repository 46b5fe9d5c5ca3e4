"""Calibration of multiple-choice answers: expected calibration error and a reliability diagram.

The model's confidence in a question is the probability it gives its chosen answer, renormalised over the
choices (softmax of the choices' log-likelihoods), as in the GPT-4 report's Figure 8. Confidences are binned
into equal-width bins; ECE = sum over bins of (bin size / N) * |accuracy in bin - mean confidence in bin|.

    ece = expected_calibration_error(confidences, correct)      # both per question; correct is 0/1
    reliability_diagram(confidences, correct, "calibration.png", title="mmlu")

`augury eval` writes both for every multiple-choice task (augury/evals/results.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def reliability_bins(confidence: Sequence[float], correct: Sequence[float], n_bins: int = 10):
    """Per bin: (lower edge, upper edge, count, mean confidence, accuracy); empty bins have NaN stats."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 goes to the first bin.
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = idx == b
        n = int(mask.sum())
        rows.append((float(edges[b]), float(edges[b + 1]), n,
                     float(conf[mask].mean()) if n else float("nan"),
                     float(ok[mask].mean()) if n else float("nan")))
    return rows


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[float], n_bins: int = 10) -> float:
    total = len(confidence)
    if total == 0:
        return float("nan")
    return float(sum(n / total * abs(acc - conf) for _, _, n, conf, acc in
                     reliability_bins(confidence, correct, n_bins) if n))


def reliability_diagram(confidence: Sequence[float], correct: Sequence[float], path: str | Path,
                        title: str, n_bins: int = 10) -> None:
    """Write a reliability diagram PNG: accuracy per confidence bin against the diagonal, with ECE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from augury.io import atomic_write_bytes

    rows = reliability_bins(confidence, correct, n_bins)
    ece = expected_calibration_error(confidence, correct, n_bins)
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    width = 1.0 / n_bins
    centers = [lo + width / 2 for lo, _, _, _, _ in rows]
    accs = [acc if n else 0.0 for _, _, n, _, acc in rows]
    ax.bar(centers, accs, width=width * 0.95, color="#4c72b0", edgecolor="black", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    for c, (_, _, n, _, acc) in zip(centers, rows):
        if n:
            ax.text(c, min(acc, 0.92) + 0.02, str(n), ha="center", fontsize=6)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("P(answer) (confidence)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}\nECE = {ece:.3f} (N = {len(confidence)})", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
