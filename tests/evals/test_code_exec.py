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


# (completion body, test body) for `def f(x):`; the verdict must be what one plain process says.
SAME_AS_ONE_PROCESS = {
    "numpy-float": ("    import numpy as np\n    return np.mean(np.array(x))\n",
                    "assert abs(candidate([1.0, 2.0, 6.0]) - 3.0) < 1e-9"),
    "numpy-int": ("    import numpy as np\n    return np.gcd(x, 18)\n", "assert candidate(12) == 6"),
    "numpy-bool-equal": ("    import numpy as np\n    return np.bool_(x > 1)\n", "assert candidate(2) == True"),
    "numpy-bool-is": ("    import numpy as np\n    return np.bool_(x > 1)\n", "assert candidate(2) is True"),
    "numpy-array-vs-list": ("    import numpy as np\n    return np.arange(x)\n", "assert candidate(3) == [0, 1, 2]"),
    "numpy-array-all": ("    import numpy as np\n    return np.arange(x)\n",
                        "assert (candidate(3) == [0, 1, 2]).all() and candidate(2).dtype.kind == 'i'"),
    "numpy-in-list": ("    import numpy as np\n    return [np.float32(0.5), np.int8(x)]\n",
                      "assert candidate(3) == [0.5, 3]"),
    "counter": ("    from collections import Counter\n    return Counter(x.split())\n",
                "assert candidate('a b b') == {'a': 1, 'b': 2} and candidate('a')['zz'] == 0"),
    "defaultdict": ("    from collections import defaultdict\n    d = defaultdict(list)\n    d[x].append(1)\n"
                    "    return d\n", "d = candidate('k'); assert d == {'k': [1]} and d['new'] == []"),
    "ordered-deque": ("    from collections import OrderedDict, deque\n    return OrderedDict(a=deque([x]))\n",
                      "assert candidate(1) == {'a': deque([1])}\nfrom collections import deque"),
    "namedtuple": ("    from collections import namedtuple\n    return namedtuple('P', 'a b')(x, x)\n",
                   "assert candidate(2) == (2, 2)"),
    "int-enum": ("    import enum\n    class E(enum.IntEnum):\n        A = 4\n    return E.A\n",
                 "assert candidate(0) == 4 and candidate(0) + 1 == 5"),
    "tuple-vs-list": ("    return (x, x)\n", "assert candidate(1) == [1, 1]"),
    "big-int-bytes-complex": ("    return [2**200 + x, b'\\x00\\xff', 1j * x, {1, 2}, frozenset()]\n",
                              "assert candidate(1) == [2**200 + 1, b'\\x00\\xff', 1j, {2, 1}, frozenset()]"),
    "fraction-decimal": ("    from fractions import Fraction\n    from decimal import Decimal\n"
                         "    return Fraction(1, x), Decimal('0.1') * x\n",
                         "from decimal import Decimal\nassert candidate(3) == (1/3, Decimal('0.3'))"),
    "nan-and-signed-zero": ("    return float('nan'), -0.0 * x\n",
                            "import math\nr = candidate(1); assert math.isnan(r[0]) and math.copysign(1, r[1]) == -1"),
    "raises": ("    raise ValueError('no')\n",
               "try:\n    candidate(1)\n    assert False\nexcept ValueError as exc:\n    assert str(exc) == 'no'"),
}


@linux_only
@pytest.mark.parametrize("name", list(SAME_AS_ONE_PROCESS))
def test_verdict_is_what_one_process_says(name):
    """Values cross between the completion's process and the tests' as the objects they are."""
    pytest.importorskip("numpy")
    completion, body = SAME_AS_ONE_PROCESS[name]
    problem = {"task_id": name, "prompt": "def f(x):\n    \"\"\"A HumanEval-style prompt.\"\"\"\n", "entry_point": "f",
               "test": "def check(candidate):\n" + "".join(f"    {line}\n" for line in body.splitlines())}
    namespace: dict = {}
    try:
        exec(problem["prompt"] + completion + problem["test"] + "\ncheck(f)\n", namespace)
        expected = True
    except Exception:
        expected = False
    result = check_humaneval(problem, completion)
    assert result.passed == expected, result.stderr[-500:]


@linux_only
def test_a_prompt_without_a_docstring_is_checked_as_in_one_process():
    """A code task's prompt may end at the signature (no docstring): it does not compile alone, yet prompt +
    completion + tests pass in one process, and the tests still see what the prompt imports and defines."""
    problem = {"task_id": "bare", "prompt": "import math\n\ndef helper(x):\n    return x\n\ndef f(x):\n",
               "entry_point": "f",
               "test": "def check(candidate):\n    assert candidate(4) == helper(math.sqrt(16)) + 0\n"}
    result = check_humaneval(problem, "    return 4.0\n")
    assert result.passed, result.stderr[-500:]
    assert not check_humaneval(problem, "    return 3.0\n").passed


LOOK_UP_THE_ANSWER = '''    import gzip, json, sys
    frame = sys._getframe()
    for line in gzip.open(DATA, "rt"):
        problem = json.loads(line)
        if problem["entry_point"] == frame.f_code.co_name:
            namespace = {}
            exec(problem["prompt"] + problem["canonical_solution"], namespace)
            args = list(frame.f_locals.values())[:frame.f_code.co_argcount]
            return namespace[problem["entry_point"]](*args)
'''


@linux_only
def test_a_completion_cannot_read_the_dataset_it_is_tested_on():
    from augury.evals.sandbox import isolation_layers

    problem = humaneval_problems()[0]
    if "hidden-dirs" not in isolation_layers():
        pytest.skip("plain modes cannot hide the data directory (see docs/sandbox.md)")
    cheat = LOOK_UP_THE_ANSWER.replace("DATA", repr(str(HUMANEVAL.resolve())))
    namespace: dict = {}
    exec(problem["prompt"] + cheat + problem["test"] + f"\ncheck({problem['entry_point']})\n", namespace)
    # the lookup works where the data can be read; in the sandbox it cannot
    result = check_humaneval(problem, cheat, hidden_dirs=[DATA])
    assert not result.passed and "FileNotFoundError" in result.stderr
