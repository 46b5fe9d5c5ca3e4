"""Shared fixtures for the scaling-law tests: hand-made runs tables and the shared-data location."""

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_data() -> Path:
    return Path(os.environ.get("AUGURY_SHARED_DATA", REPO / ".." / "shared" / "data"))


@pytest.fixture
def olmo_dir() -> Path:
    d = shared_data()
    if not (d / "olmo-ladder" / "ladder-runs").is_dir():
        pytest.skip(f"OLMo ladder data not found under {d} (set AUGURY_SHARED_DATA)")
    return d


def chinchilla_loss(n, d, A=400.0, B=410.0, E=1.7, alpha=0.34, beta=0.28):
    return E + A / np.asarray(n, float) ** alpha + B / np.asarray(d, float) ** beta


@pytest.fixture
def runs_csv(tmp_path) -> Path:
    """A table a new user would type: a few sizes, a few token budgets, chinchilla-shaped loss + noise."""
    rng = np.random.default_rng(7)
    lines = ["name,params,tokens,loss,accuracy"]
    for n in (2e7, 5e7, 1e8, 3e8, 1e9):
        for mult in (10, 20, 60):
            d = n * mult
            loss = chinchilla_loss(n, d) * np.exp(rng.normal(0, 0.003))
            flops = 6 * n * d
            acc = 0.25 + 0.5 / (1 + np.exp(-(np.log10(flops) - 19.5) * 1.5))
            lines.append(f"m{int(n / 1e6)}M-x{mult},{n:g},{d:g},{loss:.5f},{acc:.4f}")
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path
