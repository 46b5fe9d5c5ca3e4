"""Code-execution scoring: run model completions against unit tests in the sandbox, and the unbiased pass@k.

    from augury.evals.code_exec import check_humaneval, check_many, pass_at_k
    result = check_humaneval(problem, completion)          # ExecResult; result.passed
    results = check_many(programs, timeout=10.0, workers=2)  # same order as programs
    pass_at_k(n=20, c=3, k=10)

Every program runs in `augury.evals.sandbox` (fresh interpreter, own namespaces/process group/temp dir,
resource limits, hard kill); a program that hangs, crashes, floods output or attacks the harness only ever
produces a failed ExecResult, so a run always carries on with the next problem.

A HumanEval-shaped check cannot be passed by leaving early or by tampering with the tests, because the completion
never runs in the process that runs the tests (`_humaneval_runner.py`): the runner forks the completion into a
child before it has the tests, closes the child's copy of its channel to the harness, calls the entry point
through a pipe, and only then receives the tests from the harness and runs them. Return values cross that pipe
as plain data and are rebuilt by the runner from a fixed set of types (numbers, strings, containers,
`collections` mappings, Fraction, Decimal, numpy scalars and arrays), so they behave in the tests as in one
process but never bring code of the completion's (its own `__eq__`). The runner writes the verdict to the
channel after `check` returns; the harness passes a completion only on that verdict *and* exit status 0. The
runner is not dumpable, so the child cannot read its memory or file descriptors through /proc or ptrace.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from augury.evals.sandbox import ExecResult, SandboxLimits, run_python


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from n samples of which c passed (Chen et al., 2021).

    pass@k = 1 - C(n-c, k) / C(n, k), computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms the
    huge binomials and stays accurate for large n.
    """
    try:  # accepts numpy integers too; rejects floats
        n, c, k = operator.index(n), operator.index(c), operator.index(k)
    except TypeError:
        raise TypeError(f"pass_at_k needs integers, got n={n!r}, c={c!r}, k={k!r}") from None
    if n < 1 or k < 1 or k > n or not 0 <= c <= n:
        raise ValueError(f"pass_at_k needs 1 <= k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every size-k subset contains a passing sample
        return 1.0
    fail_all = 1.0
    for i in range(n - c + 1, n + 1):
        fail_all *= 1.0 - k / i
    return 1.0 - fail_all


def _limits(timeout: float, hidden_dirs: Iterable[str | os.PathLike] = ()) -> SandboxLimits:
    return SandboxLimits(timeout_s=float(timeout), hidden_dirs=tuple(map(os.fspath, hidden_dirs)))


def check_program(program: str, timeout: float = 10.0) -> ExecResult:
    """Run a complete Python program (solution + tests); passed means it exited 0 within the limits."""
    return run_python(program, _limits(timeout))


VERDICT = b"augury: every test ran to the end\n"

# The trusted test runner (standard library only; it runs under `python -I`). humaneval_program appends the call
# to its main; the tests arrive on the channel after the completion's process is forked.
RUNNER = Path(__file__).with_name("_humaneval_runner.py").read_text(encoding="utf-8")


def humaneval_program(problem: dict, completion: str) -> str:
    """The trusted runner for `completion` on a HumanEval-shaped problem (prompt, test, entry_point).

    The tests are not part of the program: `check_humaneval` hands them over the channel.
    """
    missing = [key for key in ("prompt", "test", "entry_point") if key not in problem]
    if missing:
        raise KeyError(f"HumanEval problem {problem.get('task_id', '?')} lacks key(s): {', '.join(missing)}")
    return RUNNER + f"\nmain({problem['prompt']!r}, {completion!r}, {problem['entry_point']!r}, {VERDICT!r})\n"


def check_humaneval(problem: dict, completion: str, timeout: float = 10.0,
                    hidden_dirs: Iterable[str | os.PathLike] = ()) -> ExecResult:
    """Run a HumanEval completion against the problem's `check` function.

    Passed means the runner reported that `check(entry_point)` returned, and the program exited 0.
    `hidden_dirs`: where the problems (with their reference solutions) and earlier results lie; the completion
    cannot read them in the namespace modes (see `SandboxLimits.hidden_dirs`).
    """
    program = humaneval_program(problem, completion)
    return run_python(program, _limits(timeout, hidden_dirs), channel=problem["test"].encode("utf-8"),
                      verdict=VERDICT)


def check_humaneval_many(pairs: Iterable[tuple[dict, str]], timeout: float = 10.0, workers: int = 2,
                         hidden_dirs: Iterable[str | os.PathLike] = ()) -> list[ExecResult]:
    """`check_humaneval` for many (problem, completion) pairs, `workers` at a time, in the input order."""
    pairs, hidden_dirs = list(pairs), tuple(hidden_dirs)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="augury-sandbox") as pool:
        return list(pool.map(lambda pair: check_humaneval(pair[0], pair[1], timeout, hidden_dirs), pairs))


def check_many(programs: Iterable[str], timeout: float = 10.0, workers: int = 2) -> list[ExecResult]:
    """Run many programs in the sandbox, `workers` at a time; results come back in the input order.

    Threads only wait on sandboxed subprocesses, so a small pool saturates the CPUs without forking the
    harness. Keep workers at or below the core count: limits are wall-clock, and oversubscription turns
    slow-but-correct programs into timeouts.
    """
    programs = list(programs)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="augury-sandbox") as pool:
        return list(pool.map(lambda program: check_program(program, timeout), programs))
