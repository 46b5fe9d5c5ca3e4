"""Code-execution scoring: run model completions against unit tests in the sandbox, and the unbiased pass@k.

    from augury.evals.code_exec import check_humaneval, check_many, pass_at_k
    result = check_humaneval(problem, completion)          # ExecResult; result.passed
    results = check_many(programs, timeout=10.0, workers=2)  # same order as programs
    pass_at_k(n=20, c=3, k=10)

Every program runs in `augury.evals.sandbox` (fresh interpreter, own namespaces/process group/temp dir,
resource limits, hard kill); a program that hangs, crashes, floods output or attacks the harness only ever
produces a failed ExecResult, so a run always carries on with the next problem.

A HumanEval-shaped check cannot be passed by leaving early or by tampering with the tests, because the completion
never runs in the process that runs the tests (`RUNNER`): the runner forks the completion into a child before it
has the tests, closes the child's copy of its channel to the harness, calls the entry point through a pipe with
plain data (marshal: no objects with their own `__eq__`), and only then receives the tests from the harness and
runs them. It writes the verdict to the channel after `check` returns; the harness passes a completion only on
that verdict *and* exit status 0. The runner is not dumpable, so the child cannot read its memory or file
descriptors through /proc or ptrace.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

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


def _limits(timeout: float) -> SandboxLimits:
    return SandboxLimits(timeout_s=float(timeout))


def check_program(program: str, timeout: float = 10.0) -> ExecResult:
    """Run a complete Python program (solution + tests); passed means it exited 0 within the limits."""
    return run_python(program, _limits(timeout))


VERDICT = b"augury: every test ran to the end\n"

# The trusted test runner. Standard library only (it runs under `python -I`); %r slots are filled by
# humaneval_program. The tests arrive on the channel after the completion's process is forked.
RUNNER = r'''
import ctypes, marshal, os, struct, sys
PROMPT, COMPLETION, ENTRY = %r, %r, %r
CHANNEL = int(os.environ.pop("AUGURY_CHANNEL_FD"))
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: same-uid processes cannot read our memory or fds

def send(fd, obj):
    data = marshal.dumps(obj)
    os.write(fd, struct.pack("<Q", len(data)) + data) if len(data) < 65536 else _send_long(fd, data)

def _send_long(fd, data):
    data = struct.pack("<Q", len(data)) + data
    while data:
        data = data[os.write(fd, data):]

def recv(fd):
    head = _read(fd, 8)
    return None if head is None else marshal.loads(_read(fd, struct.unpack("<Q", head)[0]) or b"")

def _read(fd, n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf

calls_r, calls_w = os.pipe()
replies_r, replies_w = os.pipe()
child = os.fork()
if child == 0:  # the completion's process: it never holds the tests or the channel
    os.close(CHANNEL); os.close(calls_w); os.close(replies_r)
    namespace = {"__name__": "__main__"}
    try:
        exec(compile(PROMPT + COMPLETION, "completion.py", "exec"), namespace)
        fn = namespace[ENTRY]
    except BaseException as exc:
        send(replies_w, ("error", type(exc).__name__, str(exc)[:2000])); os._exit(1)
    send(replies_w, ("ready",))
    while True:
        call = recv(calls_r)
        if call is None:
            os._exit(0)
        try:
            reply = ("ok", marshal.dumps(fn(*call[0], **call[1])))
        except BaseException as exc:
            reply = ("raised", type(exc).__name__, str(exc)[:2000])
        send(replies_w, reply)

os.close(calls_r); os.close(replies_w)

class CandidateFailed(Exception):
    pass

def expect_reply():
    reply = recv(replies_r)
    if reply is None:
        raise CandidateFailed("the completion's process ended before answering")
    return reply

first = expect_reply()
if first[0] != "ready":
    raise CandidateFailed(f"the completion did not load: {first[1]}: {first[2]}")

def candidate(*args, **kwargs):
    send(calls_w, (args, kwargs))
    reply = expect_reply()
    if reply[0] == "ok":
        return marshal.loads(reply[1])
    if reply[0] == "raised":
        kind = getattr(__builtins__, reply[1], None)
        if isinstance(kind, type) and issubclass(kind, Exception):
            raise kind(reply[2])
        raise CandidateFailed(f"{reply[1]}: {reply[2]}")
    raise CandidateFailed(f"unexpected reply {reply[0]!r}")

tests = b""
while True:
    chunk = os.read(CHANNEL, 65536)
    if not chunk:
        break
    tests += chunk
namespace = {"__name__": "__augury_tests__"}
exec(compile(PROMPT, "prompt.py", "exec"), namespace)
namespace[ENTRY] = candidate  # tests may call the entry point by its own name
exec(compile(tests.decode("utf-8"), "tests.py", "exec"), namespace)
namespace["check"](candidate)
os.write(CHANNEL, %r)
os._exit(0)
'''


def humaneval_program(problem: dict, completion: str) -> str:
    """The trusted runner for `completion` on a HumanEval-shaped problem (prompt, test, entry_point).

    The tests are not part of the program: `check_humaneval` hands them over the channel.
    """
    missing = [key for key in ("prompt", "test", "entry_point") if key not in problem]
    if missing:
        raise KeyError(f"HumanEval problem {problem.get('task_id', '?')} lacks key(s): {', '.join(missing)}")
    return RUNNER % (problem["prompt"], completion, problem["entry_point"], VERDICT)


def check_humaneval(problem: dict, completion: str, timeout: float = 10.0) -> ExecResult:
    """Run a HumanEval completion against the problem's `check` function.

    Passed means the runner reported that `check(entry_point)` returned, and the program exited 0.
    """
    program = humaneval_program(problem, completion)
    return run_python(program, _limits(timeout), channel=problem["test"].encode("utf-8"), verdict=VERDICT)


def check_humaneval_many(pairs: Iterable[tuple[dict, str]], timeout: float = 10.0,
                         workers: int = 2) -> list[ExecResult]:
    """`check_humaneval` for many (problem, completion) pairs, `workers` at a time, in the input order."""
    pairs = list(pairs)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="augury-sandbox") as pool:
        return list(pool.map(lambda pair: check_humaneval(pair[0], pair[1], timeout), pairs))


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
