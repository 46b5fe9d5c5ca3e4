"""Tests for augury.evals.code_exec: the unbiased pass@k and HumanEval checking in the sandbox."""

import gzip
import json
import os
import sys
import time
from math import comb
from pathlib import Path

import pytest

from augury.evals.code_exec import (
    check_humaneval,
    check_humaneval_many,
    check_many,
    check_program,
    humaneval_program,
    pass_at_k,
)

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("AUGURY_SHARED_DATA", REPO / ".." / "shared" / "data"))
HUMANEVAL = DATA / "humaneval" / "HumanEval.jsonl.gz"
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox targets Linux")


def humaneval_problems() -> list[dict]:
    if not HUMANEVAL.exists():
        pytest.skip(f"HumanEval data not found at {HUMANEVAL} (set AUGURY_SHARED_DATA)")
    with gzip.open(HUMANEVAL, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (5, 2, 1), (10, 3, 5), (20, 1, 10), (200, 13, 100),
                                   (200, 0, 50), (200, 200, 1), (7, 4, 4), (100, 50, 3)])
def test_pass_at_k_matches_the_binomial_closed_form(n, c, k):
    exact = 1.0 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12, abs=1e-12)


def test_pass_at_1_is_the_fraction_passed():
    assert pass_at_k(40, 10, 1) == pytest.approx(0.25, rel=1e-15)


def test_pass_at_k_is_one_when_every_k_subset_has_a_pass():
    assert pass_at_k(10, 8, 3) == 1.0


def test_pass_at_k_stays_accurate_for_huge_n():
    # C(100000, 1000) overflows a float; the product form does not need it.
    n, c, k = 100_000, 10, 1000
    exact = 1.0 - comb(n - c, k) / comb(n, k)  # Python ints: exact big-number division
    assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("n,c,k", [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match="pass_at_k"):
        pass_at_k(n, c, k)


def test_pass_at_k_accepts_numpy_integers_and_rejects_floats():
    np = pytest.importorskip("numpy")

    assert pass_at_k(np.int64(10), np.int64(3), 2) == pytest.approx(1 - comb(7, 2) / comb(10, 2))
    with pytest.raises(TypeError, match="integers"):
        pass_at_k(10.0, 3, 2)


def test_humaneval_program_names_missing_keys():
    with pytest.raises(KeyError, match="HumanEval/0 lacks key\\(s\\): test"):
        humaneval_program({"task_id": "HumanEval/0", "prompt": "", "entry_point": "f"}, "")


@pytest.mark.integration
@linux_only
def test_all_humaneval_canonical_solutions_pass():
    problems = humaneval_problems()
    assert len(problems) == 164
    start = time.monotonic()
    results = check_humaneval_many([(p, p["canonical_solution"]) for p in problems], timeout=20.0)
    failures = {p["task_id"]: (r.status, r.stderr[-300:]) for p, r in zip(problems, results) if not r.passed}
    assert failures == {}
    assert time.monotonic() - start < 120.0  # ~15 s on 2 idle cores; generous for loaded CI machines


@linux_only
def test_wrong_humaneval_solution_fails():
    problem = humaneval_problems()[0]  # has_close_elements: some tests expect True
    result = check_humaneval(problem, "    return False\n")
    assert not result.passed and result.status == "failed"
    assert "AssertionError" in result.stderr
    assert check_humaneval(problem, problem["canonical_solution"]).passed  # the right one still passes


@linux_only
def test_check_many_carries_on_past_bad_programs_in_order():
    programs = ["print(1)", "while True:\n    pass", "raise ValueError('boom')", "print(4)",
                "print('x' * 10**8)"]
    # Generous: limits are wall-clock, and on a loaded machine interpreter start-up alone can take seconds.
    results = check_many(programs, timeout=6.0, workers=2)
    assert [r.status for r in results] == ["passed", "timeout", "failed", "passed", "failed"]
    assert results[0].stdout == "1\n" and results[3].stdout == "4\n"
    assert results[4].reason == "output-limit"


@linux_only
def test_check_program_reports_a_passing_program():
    result = check_program("assert sorted([3, 1, 2]) == [1, 2, 3]")
    assert (result.passed, result.status, result.returncode) == (True, "passed", 0)
