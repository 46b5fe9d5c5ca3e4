"""An arithmetic task in the pretraining corpus's style, with an exact, programmatic reward (`augury rl-demo`).

    problems = arithmetic_problems(max_operand=99)            # every "a + b" with 0 <= a, b <= 99
    train, held = split_problems(problems, held_out=0.2)      # by the unordered pair: 12 + 35 and 35 + 12 together
    sft_rows(train)     # [{"prompt": ">>> 12 + 35\\n", "completion": "47"}, ...]   (TRL prompt/completion)
    prompt_rows(held)   # [{"prompt": ">>> 12 + 35\\n", "answer": "47"}, ...]       (augury rl prompts)
    exact_answer(prompts, completions, answer=[...])          # the reward: 1.0 or 0.0 per completion

    augury rl --reward_functions augury.align.arithmetic:exact_answer ...

A problem is written as a doctest, as the standard library writes examples in its docstrings: the prompt is the
`>>> a + b` line, the completion the value the interpreter would print. The reward is 1 when the completion is
exactly the answer (surrounding whitespace aside) and 0 otherwise: a completion with several numbers, the answer
followed by anything, the answer in another spelling (047, 47.0, +47) or a guess and a correction all get 0, so the
only way to a higher reward is the right number alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    a: int
    b: int
    op: str = "+"

    @property
    def prompt(self) -> str:
        return f">>> {self.a} {self.op} {self.b}\n"

    @property
    def answer(self) -> str:
        return str(self.a + self.b if self.op == "+" else self.a - self.b)


def arithmetic_problems(max_operand: int = 99, ops: str = "+") -> list[Problem]:
    """Every problem `a op b` with 0 <= a, b <= max_operand, in a fixed order."""
    if max_operand < 1:
        raise ValueError("max_operand must be >= 1")
    if not ops or set(ops) - {"+", "-"}:
        raise ValueError(f"ops must be made of '+' and '-', got {ops!r}")
    return [Problem(a, b, op) for op in ops for a in range(max_operand + 1) for b in range(max_operand + 1)]


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def split_problems(problems: list[Problem], held_out: float) -> tuple[list[Problem], list[Problem]]:
    """(train, held out), by a hash of the operator and the unordered operands: the same on every machine and for
    every seed, and a problem's commuted twin (b + a) always on the same side."""
    if not 0 < held_out < 1:
        raise ValueError("held_out must be in (0, 1)")
    train, held = [], []
    for p in problems:
        key = f"{p.op}:{min(p.a, p.b)}:{max(p.a, p.b)}" if p.op == "+" else f"{p.op}:{p.a}:{p.b}"
        (held if _unit(key) < held_out else train).append(p)
    return train, held


def sft_rows(problems: list[Problem]) -> list[dict]:
    """Demonstrations in TRL's prompt/completion shape (plain text)."""
    return [{"prompt": p.prompt, "completion": p.answer} for p in problems]


def prompt_rows(problems: list[Problem]) -> list[dict]:
    """RL prompts: the prompt and the `answer` column the reward function receives."""
    return [{"prompt": p.prompt, "answer": p.answer} for p in problems]


def _text(completion) -> str:
    """A completion as text: a string, or a message list (the last message's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise TypeError(f"a completion must be text or a message list, got {type(completion).__name__}")


def is_exact(completion, answer: str) -> bool:
    """The completion is the answer and nothing else (leading/trailing whitespace aside)."""
    return _text(completion).strip() == str(answer).strip()


def exact_answer(prompts: list, completions: list, answer: list, **columns) -> list[float]:
    """The reward (TRL's signature): 1.0 for a completion that is exactly its row's `answer`, else 0.0."""
    if len(answer) != len(completions):
        raise ValueError(f"{len(answer)} answers for {len(completions)} completions")
    return [1.0 if is_exact(c, a) else 0.0 for c, a in zip(completions, answer)]
