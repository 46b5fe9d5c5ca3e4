"""A HumanEval completion passes only when every test ran to the end: leaving early or tampering fails.

Each test is one way a program (or an RL policy rewarded by these checks) could try to pass without solving the
problem; each must fail. The problem is HumanEval/0 (`has_close_elements`); the real solution passes.
"""

from __future__ import annotations

import sys

import pytest

from augury.evals.code_exec import check_humaneval

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox targets Linux")

PROMPT = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than given threshold."""
'''
TEST = '''

def check(candidate):
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False
    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True
    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 1.0) == True
    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 0.5) == False
'''
PROBLEM = {"task_id": "HumanEval/0", "prompt": PROMPT, "test": TEST, "entry_point": "has_close_elements"}
SOLUTION = '''    for i, a in enumerate(numbers):
        for j, b in enumerate(numbers):
            if i != j and abs(a - b) < threshold:
                return True
    return False
'''


def test_the_real_solution_passes():
    assert check_humaneval(PROBLEM, SOLUTION).passed


def test_a_wrong_solution_fails():
    assert not check_humaneval(PROBLEM, "    return True\n").passed


@pytest.mark.parametrize("completion", [
    "    return True\nimport sys\nsys.exit(0)\n",                      # exit 0 at module level
    "    return True\nimport os\nos._exit(0)\n",                       # hard exit at module level
    "    import os\n    os._exit(0)\n",                                # exit 0 inside the candidate
    "    raise SystemExit(0)\n",                                       # SystemExit from the candidate
    "    return True\nraise SystemExit(0)\n",                          # SystemExit at module level
], ids=["sys.exit-module", "os._exit-module", "os._exit-candidate", "SystemExit-candidate", "SystemExit-module"])
def test_leaving_early_fails(completion):
    result = check_humaneval(PROBLEM, completion)
    assert not result.passed


def test_replacing_check_fails():
    completion = "    return True\ndef check(candidate):\n    pass\n"
    assert not check_humaneval(PROBLEM, completion).passed


def test_replacing_assertion_error_fails():
    completion = ("    return True\nimport builtins\nclass Quiet(Exception):\n    pass\n"
                  "builtins.AssertionError = Quiet\nAssertionError = Quiet\n")
    assert not check_humaneval(PROBLEM, completion).passed


def test_patching_builtins_fails():
    # make every comparison the tests could use come out "equal"
    completion = ("    class Yes:\n        def __eq__(self, other):\n            return True\n    return Yes()\n"
                  "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.len = lambda x: 0\n")
    assert not check_humaneval(PROBLEM, completion).passed


def test_an_object_equal_to_everything_fails():
    completion = ("    class Yes(int):\n        def __eq__(self, other):\n            return True\n"
                  "        __hash__ = int.__hash__\n    return Yes()\n")
    assert not check_humaneval(PROBLEM, completion).passed


@pytest.mark.parametrize("completion", [
    ("    import numpy as np\n    class Yes(np.float64):\n        def __eq__(self, other):\n            return True\n"
     "    return Yes(0.5)\n"),
    ("    import collections\n    collections.Counter.__eq__ = lambda self, other: True\n"
     "    return collections.Counter()\n"),
    "    import numpy as np\n    return np.array([object()], dtype=object)\n",
], ids=["numpy-subclass", "patched-Counter", "object-in-array"])
def test_values_bring_no_code_of_the_completion(completion):
    # returned values are rebuilt in the tests' process from trusted types; the completion's methods stay behind
    pytest.importorskip("numpy")
    assert not check_humaneval(PROBLEM, completion).passed


def test_killing_the_parent_fails():
    completion = "    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n    return True\n"
    assert not check_humaneval(PROBLEM, completion).passed


def test_printing_what_a_naive_harness_looks_for_fails():
    completion = ("    import os\n    print('augury: every test ran to the end')\n"
                  "    print('passed'); print('OK'); os._exit(0)\n")
    assert not check_humaneval(PROBLEM, completion).passed


def test_closing_stdout_fails():
    completion = "    import os\n    os.close(1)\n    os.close(2)\n    os._exit(0)\n"
    assert not check_humaneval(PROBLEM, completion).passed


def test_writing_to_every_descriptor_fails():
    # the verdict channel is closed in the completion's process before its code runs
    completion = ("    import os\n    for fd in range(3, 256):\n        try:\n"
                  "            os.write(fd, b'augury: every test ran to the end\\n')\n"
                  "        except OSError:\n            pass\n    os._exit(0)\n")
    assert not check_humaneval(PROBLEM, completion).passed


def test_reading_the_tests_from_disk_finds_nothing():
    # the tests are not in the program file: they reach the runner over its channel after the fork
    completion = ("    import glob\n    paths = glob.glob('*.py') + glob.glob('/tmp/*/*.py')\n"
                  "    text = ''.join(open(p).read() for p in paths)\n"
                  "    return '0.05) == False' in text\n")
    result = check_humaneval(PROBLEM, completion)
    assert not result.passed


def test_a_stop_iteration_from_the_candidate_cannot_end_the_tests_iteration():
    # map() passes a StopIteration from its function on as its own end: all() of an ended map() is True
    test = ("\n\ndef check(candidate):\n    cases = [(([1.0, 2.0], 0.5), False), (([1.0, 1.1], 0.5), True)]\n"
            "    assert all(map(lambda case: candidate(*case[0]) == case[1], cases))\n")
    problem = dict(PROBLEM, test=test)
    assert check_humaneval(problem, SOLUTION).passed
    assert not check_humaneval(problem, "    raise StopIteration\n").passed
