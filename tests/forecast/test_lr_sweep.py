"""experiments/recipe/lr_sweep.py's best learning-rate multiple (docs/experiments.md's lr findings)."""

from __future__ import annotations

import math

import pytest

from experiments.recipe.lr_sweep import best_multiple


def _losses(mults, best=1.6):
    return [(math.log2(m) - math.log2(best)) ** 2 + 3.0 for m in mults]


def test_the_parabola_finds_an_interior_optimum():
    mults = [0.5, 1.0, 2.0, 4.0]
    best, inside = best_multiple(mults, _losses(mults))
    assert inside and best == pytest.approx(1.6)
    assert best_multiple(mults, _losses(mults, best=8.0)) == (4.0, False)


def test_multiples_given_out_of_order_are_neighbours_by_value():
    """`--mults 1 0.5 4 2` took the entries beside the lowest in the order typed: the lowest (2) came last, so the
    optimum read as 2, 'at the edge' of the sweep, for a true 1.6 inside it; neighbours are now by learning rate."""
    mults = [1.0, 0.5, 4.0, 2.0]
    best, inside = best_multiple(mults, _losses(mults))
    assert inside and best == pytest.approx(1.6)
    assert best_multiple(mults, _losses(mults, best=8.0)) == (4.0, False)
