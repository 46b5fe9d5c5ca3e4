"""The doctest-arithmetic task of `augury rl-demo`: the exact-answer reward (and attempts to game it), the split."""

from __future__ import annotations

import pytest

from augury.align.arithmetic import (
    Problem,
    arithmetic_problems,
    exact_answer,
    prompt_rows,
    sft_rows,
    split_problems,
)


def test_exact_answer_rewards_only_the_right_number_alone():
    completions = ["47", " 47\n", "48", "", "[{}]"]
    assert exact_answer(["p"] * 5, completions, answer=["47"] * 5) == [1.0, 1.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("attempt", [
    "47 48", "46 47 48", "4747", "47\n48", "47\n>>> 1 + 1\n2", "047", "47.0", "+47", "forty-seven",
    "answer: 47", "47 # 47", "0 1 2 3 4 5 6 7 8 9 10 47", "4 7", "4\n7",
])
def test_gaming_attempts_get_nothing(attempt):
    assert exact_answer(["p"], [attempt], answer=["47"]) == [0.0]


def test_reward_takes_conversational_completions_and_checks_lengths():
    assert exact_answer(["p", "q"], [[{"role": "assistant", "content": "7"}],
                                     [{"role": "assistant", "content": "7 8"}]], answer=["7", "7"]) == [1.0, 0.0]
    with pytest.raises(ValueError):
        exact_answer(["p"], ["1", "2"], answer=["1"])
    with pytest.raises(TypeError):
        exact_answer(["p"], [3], answer=["3"])


def test_reward_works_through_augury_rl_loader():
    from augury.align.rl_rewards import call_reward, load_reward_functions

    [(name, fn, weight)] = load_reward_functions(["augury.align.arithmetic:exact_answer=2"])
    assert weight == 2.0
    rows = prompt_rows([Problem(12, 35), Problem(3, 4)])
    scores = call_reward(name, fn, [r["prompt"] for r in rows], ["47", "8"], {"answer": [r["answer"] for r in rows]})
    assert scores == [1.0, 0.0]


def test_problems_in_doctest_style():
    p = Problem(12, 35)
    assert (p.prompt, p.answer) == (">>> 12 + 35\n", "47")
    assert Problem(3, 9, "-").answer == "-6"
    assert sft_rows([p]) == [{"prompt": ">>> 12 + 35\n", "completion": "47"}]
    assert len(arithmetic_problems(9)) == 100 and len(arithmetic_problems(9, "+-")) == 200
    with pytest.raises(ValueError):
        arithmetic_problems(9, "*")


def test_split_is_deterministic_disjoint_and_keeps_commuted_twins_together():
    problems = arithmetic_problems(99)
    train, held = split_problems(problems, 0.2)
    assert (train, held) == split_problems(problems, 0.2)
    assert len(train) + len(held) == len(problems) and not set(train) & set(held)
    assert 0.15 < len(held) / len(problems) < 0.25
    held_set = set(held)
    assert all(Problem(p.b, p.a) in held_set for p in held)
