"""`augury rl` (group-relative): it trains, logs what it should, resumes exactly, and refuses bad reward sources."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from augury.align.data import AlignDataError
from augury.align.rl import RLConfig, RLDiverged, train_rl
from augury.align.rl_rewards import RewardError

REWARDS = '''
def short(prompts, completions, **columns):
    """Reward short replies (a task any policy can move on)."""
    text = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [-len(t) / 10 for t in text]

def uses_column(prompts, completions, kind, **columns):
    return [1.0 if k == "safe" else 0.0 for k in kind]

def raises(prompts, completions, **columns):
    raise RuntimeError("boom")

def nan(prompts, completions, **columns):
    return [float("nan")] * len(completions)

def too_few(prompts, completions, **columns):
    return [0.0]

def every_other(prompts, completions, **columns):
    return [None if i % 2 else 1.0 for i in range(len(completions))]
'''


@pytest.fixture
def rewards_module(tmp_path, monkeypatch):
    (tmp_path / "rl_rewards_for_tests.py").write_text(REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "rl_rewards_for_tests"


@pytest.fixture
def prompts_file(tmp_path):
    rows = [{"prompt": [{"role": "user", "content": f"What is two plus {i}?"}], "kind": "safe" if i % 2 else "harm"}
            for i in range(6)]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cfg(chat_run, prompts_file, out, mod, **kw):
    base = dict(policy_run=str(chat_run), prompts=str(prompts_file), out=str(out), steps=4, prompts_per_step=2,
                num_generations=3, response_length=8, lr=1e-3, ckpt_every=2,
                reward_functions=[f"{mod}:short", f"{mod}:uses_column=0.5"])
    return RLConfig(**{**base, **kw})


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_rl_logs_rewards_per_source_kl_entropy_length_and_clipping(chat_run, prompts_file, rewards_module, tmp_path):
    out = train_rl(_cfg(chat_run, prompts_file, tmp_path / "rl", rewards_module), log=lambda *_: None)
    rows = _metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in ("reward", f"reward/{rewards_module}:short", f"reward/{rewards_module}:uses_column", "kl", "entropy",
                "response_length", "clip_fraction", "frac_reward_zero_std"):
        assert all(key in r and r[key] == r[key] for r in rows), key
    assert all(0 <= r["frac_reward_zero_std"] <= 1 for r in rows)
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # the first step starts at the reference
    assert json.loads((out / "manifest.json").read_text())["finished"] is True
    from augury.model.run import load_run

    load_run(out)  # an ordinary run


@pytest.mark.parametrize("masked", [False, True])
def test_completions_cut_at_the_length_limit_may_be_left_out_of_the_loss(chat_run, prompts_file, rewards_module,
                                                                         tmp_path, monkeypatch, masked):
    import augury.align.rl as rl_mod

    counted = []
    real = rl_mod.clipped_policy_loss

    def spy(logp, old_logp, advantages, mask, cliprange):
        counted.append(float(mask.sum()))
        return real(logp, old_logp, advantages, mask, cliprange)

    monkeypatch.setattr(rl_mod, "clipped_policy_loss", spy)
    # two tokens: no reply of the tiny model ends that soon, so every one is cut at the limit
    out = train_rl(_cfg(chat_run, prompts_file, tmp_path / "rl", rewards_module, steps=2, response_length=2,
                        mask_truncated_completions=masked), log=lambda *_: None)
    assert [r["completions/clipped_ratio"] for r in _metrics(out)] == [1.0, 1.0]
    assert (max(counted) == 0) if masked else (min(counted) > 0)


def test_rl_resume_is_exact(chat_run, prompts_file, rewards_module, tmp_path, killed_after_checkpoint):
    whole = train_rl(_cfg(chat_run, prompts_file, tmp_path / "whole", rewards_module), log=lambda *_: None)
    killed_after_checkpoint(2, lambda: train_rl(_cfg(chat_run, prompts_file, tmp_path / "split", rewards_module),
                                                log=lambda *_: None))
    split = train_rl(_cfg(chat_run, prompts_file, tmp_path / "split", rewards_module, resume=True),
                     log=lambda *_: None)
    a, b = _metrics(whole), _metrics(split)
    assert [r["reward"] for r in a] == [r["reward"] for r in b] and [r["kl"] for r in a] == [r["kl"] for r in b]
    from safetensors.torch import load_file

    wa = load_file(str(whole / "checkpoints" / "step_00000004" / "model.safetensors"))
    wb = load_file(str(split / "checkpoints" / "step_00000004" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("fn,message", [("raises", "raised RuntimeError: boom"), ("nan", "must be finite"),
                                        ("too_few", "returned 1 scores for 6"), ("missing", "cannot import")])
def test_a_bad_reward_function_is_one_clear_error(chat_run, prompts_file, rewards_module, tmp_path, fn, message):
    with pytest.raises(RewardError, match=message):
        train_rl(_cfg(chat_run, prompts_file, tmp_path / fn, rewards_module,
                      reward_functions=[f"{rewards_module}:{fn}"]), log=lambda *_: None)
    assert not (tmp_path / fn).exists()  # failed before its first checkpoint: the same command can be rerun


@pytest.mark.parametrize("source,message", [
    ("def f(:\n", r"reward function broken_rewards_for_tests:f: cannot import it \(SyntaxError"),
    ("raise RuntimeError('no config')\n", r"cannot import it \(RuntimeError: no config\)"),
    ("f = 3\n", r"reward function broken_rewards_for_tests:f is not callable \(its type is int\)"),
])
def test_a_reward_module_that_cannot_be_used_is_one_clear_error_before_any_work(tmp_path, monkeypatch, source,
                                                                                message):
    import sys

    from augury.align.rl_rewards import load_reward_functions

    (tmp_path / "broken_rewards_for_tests.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "broken_rewards_for_tests", raising=False)
    with pytest.raises(RewardError, match=message):
        load_reward_functions(["broken_rewards_for_tests:f"])


def test_kl_blow_up_stops_naming_the_step(chat_run, prompts_file, rewards_module, tmp_path):
    # the second gradient step on the first batch already moves the policy past the bound
    with pytest.raises(RLDiverged, match=r"step 1: KL to the reference .* > max_kl"):
        train_rl(_cfg(chat_run, prompts_file, tmp_path / "kl", rewards_module, lr=0.5, max_kl=1e-6,
                      num_ppo_epochs=2), log=lambda *_: None)


def test_ppo_with_a_value_head_trains_and_resumes_exactly(chat_run, prompts_file, rewards_module, tmp_path,
                                                          killed_after_checkpoint):
    def cfg(out, **kw):
        return _cfg(chat_run, prompts_file, out, rewards_module, algorithm="ppo", num_generations=2,
                    num_ppo_epochs=2, **kw)

    whole = train_rl(cfg(tmp_path / "whole"), log=lambda *_: None)
    rows = _metrics(whole)
    assert len(rows) == 4 and all(r["loss"] == r["loss"] for r in rows)
    assert (whole / "value_heads" / "step_00000004.safetensors").is_file()
    killed_after_checkpoint(2, lambda: train_rl(cfg(tmp_path / "split"), log=lambda *_: None))
    split = train_rl(cfg(tmp_path / "split", resume=True), log=lambda *_: None)
    assert [r["loss"] for r in _metrics(split)] == [r["loss"] for r in rows]


def test_reward_functions_flag_may_repeat(chat_run, prompts_file, rewards_module, tmp_path):
    from augury.command import config_cli

    cfg = config_cli(RLConfig, ["--reward_functions", f"{rewards_module}:short", "--reward-functions",
                                f"{rewards_module}:uses_column=0.5"], prog="augury rl")
    assert cfg.reward_functions == [f"{rewards_module}:short", f"{rewards_module}:uses_column=0.5"]
    assert config_cli(RLConfig, ["--reward_functions", '["a:b"]'], prog="augury rl").reward_functions == ["a:b"]


@pytest.fixture
def kind_prompts(tmp_path):
    rows = [{"prompt": [{"role": "user", "content": f"Question {i}?"}], "kind": ["harmful", "safe", None][i % 3]}
            for i in range(6)]
    path = tmp_path / "kinds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rbrm_rewards_from_a_grader_are_logged_per_source(chat_run, kind_prompts, rewards_module, tmp_path):
    cfg = _cfg(chat_run, kind_prompts, tmp_path / "rl", rewards_module, reward_functions=[f"{rewards_module}:short"],
               grader="rules", rubric="refusal_abcd", grader_weight=2.0, steps=2)
    rows = _metrics(train_rl(cfg, log=lambda *_: None))
    for r in rows:
        assert "reward/rbrm" in r and r["grader_failures"] == 0 and r["reward/rbrm_untagged"] >= 0
        shares = [r[f"reward/rbrm_class/{c}"] for c in ("desired_refusal", "undesired_refusal",
                                                        "disallowed_content", "safe_non_refusal")]
        assert sum(shares) == pytest.approx(1.0)
        for kind in ("harmful", "safe"):  # and per kind, whose class shares each sum to one as well
            if f"reward/rbrm/{kind}" in r:
                assert sum(r[f"reward/rbrm_class/{kind}/{c}"] for c in ("desired_refusal", "undesired_refusal",
                           "disallowed_content", "safe_non_refusal")) == pytest.approx(1.0)
    assert any("reward/rbrm/harmful" in r for r in rows) and any("reward/rbrm/safe" in r for r in rows)


def test_balance_column_draws_each_value_equally_every_step_and_the_same_on_resume(tmp_path):
    from augury.align.data import AlignDataError
    from augury.align.rl_prompts import prompt_strata, step_prompts

    rows = [{"kind": "harmful"}] * 9 + [{"kind": "safe"}] * 3  # uniform draws would be three-quarters harmful
    cfg = RLConfig(policy_run="p", prompts="x.jsonl", reward_functions=["m:f"], prompts_per_step=4,
                   balance_column="kind")
    strata = prompt_strata(cfg, rows)
    for step in range(20):
        picked = step_prompts(cfg, step, len(rows), strata)
        assert sorted(rows[i]["kind"] for i in picked) == ["harmful", "harmful", "safe", "safe"]
        assert len(set(picked)) == 4 and picked == step_prompts(cfg, step, len(rows), strata)
    cfg.prompts_per_step = 5  # the odd one goes to a value drawn per step; a value with too few rows repeats
    counts = [sum(rows[i]["kind"] == "safe" for i in step_prompts(cfg, s, len(rows), strata)) for s in range(40)]
    assert set(counts) == {2, 3}
    cfg.balance_column = "family"
    with pytest.raises(AlignDataError, match="row 1 has no 'family'"):
        prompt_strata(cfg, rows)
    cfg.balance_column, cfg.prompts_per_step = "kind", 1
    with pytest.raises(AlignDataError, match="2 values but prompts_per_step is 1"):
        prompt_strata(cfg, rows)


def test_a_step_draws_prompts_per_step_prompts_from_a_file_with_fewer_rows():
    from augury.align.rl_prompts import step_prompts

    cfg = RLConfig(policy_run="p", prompts="x.jsonl", reward_functions=["m:f"], prompts_per_step=5)
    for step in range(5):
        picked = step_prompts(cfg, step, 2, None)
        assert len(picked) == 5 and sorted(set(picked)) == [0, 1]  # each row, as evenly as may be
        assert max(picked.count(i) for i in (0, 1)) == 3 and picked == step_prompts(cfg, step, 2, None)
    big = step_prompts(cfg, 3, 9, None)  # enough rows: without replacement, as before
    assert len(set(big)) == 5 and big == [int(i) for i in np.random.default_rng([0, 3]).permutation(9)[:5]]


def test_grader_failures_are_left_out_and_counted_never_scored_zero(chat_run, tmp_path, monkeypatch):
    from augury.align import rl
    from augury.safety.graders import Grader, Grading

    class HalfFailing(Grader):
        def _grade(self, prompts, responses, kinds):
            return [Grading(k, error="endpoint: down") if i % 2 else
                    Grading(k, {c.name: float(c.letter == "A") for c in self.rubric.classes})
                    for i, k in enumerate(kinds)]

    from augury.safety.rubric import load_rubric

    monkeypatch.setattr(rl, "load_rubric_grader", lambda cfg, rows: HalfFailing(load_rubric("refusal_abcd")))
    kind_prompts = tmp_path / "harmful.jsonl"
    kind_prompts.write_text("".join(json.dumps({"prompt": f"Q{i}", "kind": "harmful"}) + "\n" for i in range(4)))
    cfg = _cfg(chat_run, kind_prompts, tmp_path / "rl", "", reward_functions=[], grader="x", steps=2,
               num_generations=4, max_grader_failures=0.6)
    rows = _metrics(train_rl(cfg, log=lambda *_: None))
    assert all(r["grader_failures"] > 0 for r in rows)
    assert rows[-1]["grader_failures_total"] == sum(r["grader_failures"] for r in rows)
    # every graded rollout scored +1 (class A on a harmful prompt): a failed one is not in the mean as a zero
    assert all(r["reward/rbrm"] == 1.0 for r in rows)
    cfg = _cfg(chat_run, kind_prompts, tmp_path / "rl2", "", reward_functions=[], grader="x", steps=2,
               num_generations=4, max_grader_failures=0.1)
    with pytest.raises(RLDiverged, match="the grader failed on"):
        train_rl(cfg, log=lambda *_: None)


def test_max_grader_failures_is_a_share_of_the_graded_rollouts_not_of_all(chat_run, rewards_module, tmp_path,
                                                                          monkeypatch):
    """Rows without a kind are never graded: counting them in the denominator let a step whose every graded rollout
    failed (the judge down) train on as if half had."""
    from augury.align import rl
    from augury.safety.graders import Grader, Grading
    from augury.safety.rubric import load_rubric

    class Down(Grader):
        def _grade(self, prompts, responses, kinds):
            return [Grading(k, error="endpoint: down") for k in kinds]

    monkeypatch.setattr(rl, "load_rubric_grader", lambda cfg, rows: Down(load_rubric("refusal_abcd")))
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps({"prompt": f"Q{i}", **({"kind": "harmful"} if i % 2 else {})}) + "\n"
                             for i in range(4)))
    cfg = _cfg(chat_run, mixed, tmp_path / "rl", rewards_module, reward_functions=[f"{rewards_module}:short"],
               grader="x", steps=1, prompts_per_step=4, num_generations=2, max_grader_failures=0.5)
    with pytest.raises(RLDiverged, match="step 1: the grader failed on 4 of 4 graded rollouts"):
        train_rl(cfg, log=lambda *_: None)


@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "ppo"])
def test_a_group_with_no_graded_rollout_is_not_logged_as_zero(chat_run, tmp_path, monkeypatch, algorithm):
    from augury.align import rl
    from augury.safety.graders import Grader, Grading
    from augury.safety.rubric import load_rubric

    class FailsOnQ0(Grader):  # every completion of prompt Q0 fails; Q1's are desired refusals (+1, harmful)
        def _grade(self, prompts, responses, kinds):
            return [Grading(k, error="endpoint: down") if p == "Q0" else
                    Grading(k, {c.name: float(c.letter == "A") for c in self.rubric.classes})
                    for p, k in zip(prompts, kinds)]

    monkeypatch.setattr(rl, "load_rubric_grader", lambda cfg, rows: FailsOnQ0(load_rubric("refusal_abcd")))
    kind_prompts = tmp_path / "harmful.jsonl"
    kind_prompts.write_text("".join(json.dumps({"prompt": f"Q{i}", "kind": "harmful"}) + "\n" for i in range(2)))
    cfg = _cfg(chat_run, kind_prompts, tmp_path / "rl", "", reward_functions=[], grader="x", steps=2,
               num_generations=4, max_grader_failures=0.5, algorithm=algorithm)
    rows = _metrics(train_rl(cfg, log=lambda *_: None))
    assert all(r["loss"] == r["loss"] for r in rows)
    assert [r["reward"] for r in rows] == [1.0, 1.0]  # the mean over graded rollouts, not 0.5
    assert [r["unscored"] for r in rows] == [4, 4] and [r["grader_failures"] for r in rows] == [4, 4]


def test_a_reward_function_may_return_an_array_or_a_tensor_as_under_trl():
    # TRL's trainers iterate over what a reward function returns: an array or a 1-D tensor works there too
    from augury.align.rl_rewards import call_reward

    for kind in (np.array, torch.tensor):
        assert call_reward("m:f", lambda **_: kind([0.5, 1.0]), ["p"] * 2, ["c"] * 2, {}) == [0.5, 1.0]
    with pytest.raises(RewardError, match=r"returned an array of shape \(2, 2\) for 2 completions"):
        call_reward("m:f", lambda **_: np.zeros((2, 2)), ["p"] * 2, ["c"] * 2, {})


def test_a_reward_function_returning_none_is_left_out_as_in_trl():
    from augury.align.rl_losses import group_advantages
    from augury.align.rl_rewards import Rollout, call_reward, rollout_rewards

    def maybe(prompts, completions, **columns):  # applies to the first two completions of each group only
        return [None if i % 4 >= 2 else float(i % 2) for i in range(len(completions))]

    def every_other(prompts, completions, **columns):
        return [None if i % 2 else 1.0 for i in range(len(completions))]

    scores = call_reward("m:maybe", maybe, ["p"] * 4, ["c"] * 4, {})
    assert scores[:2] == [0.0, 1.0] and all(s != s for s in scores[2:])  # None is NaN, never 0
    rollouts = [Rollout({"prompt": f"p{i // 4}"}, [1], [2], "c", True) for i in range(8)]
    cfg = RLConfig(policy_run="x", prompts="x", reward_functions=["m:maybe"])
    rewards, by_source, ok = rollout_rewards(cfg, rollouts, None, [("m:maybe", maybe, 1.0)], group=4)
    assert ok.tolist() == [True, True, False, False] * 2 and torch.isnan(rewards[~torch.from_numpy(ok)]).all()
    assert by_source["m:maybe"] == 0.5 and by_source["m:maybe/none"] == 4
    assert group_advantages(rewards, 4)[:4].tolist() == pytest.approx([-0.7071, 0.7071, 0.0, 0.0], abs=1e-3)
    # with another source scoring it, a completion a function does not apply to is scored by that source alone
    rewards, by_source, ok = rollout_rewards(cfg, rollouts, None, [("m:maybe", maybe, 1.0),
                                                                  ("m:every_other", every_other, 2.0)], group=4)
    assert ok.tolist() == [True, True, True, False] * 2
    assert rewards[:3].tolist() == [2.0, 1.0, 2.0] and by_source["m:every_other"] == 1.0


def test_prompt_kinds_are_checked_against_the_rubric(chat_run, prompts_file, tmp_path):
    from augury.align.data import AlignDataError

    cfg = _cfg(chat_run, prompts_file, tmp_path / "rl", "", reward_functions=[], grader="rules",
               rubric="refusal_abcd")
    with pytest.raises(AlignDataError, match="'harm' is not one of the rubric's kinds"):
        train_rl(cfg, log=lambda *_: None)
    cfg.kind_column = "category"
    with pytest.raises(AlignDataError, match="needs rows tagged with a prompt kind"):
        train_rl(cfg, log=lambda *_: None)


def test_groups_the_rubric_cannot_tell_apart_are_counted_per_kind():
    """A prompt whose completions all land in one rubric class teaches nothing through the rubric: the share of
    such groups is logged per kind, so an RL run that never samples a refusal for some prompts shows it."""
    from augury.align.rl_rewards import Rollout, rollout_rewards
    from augury.safety.graders import Grader, Grading
    from augury.safety.rubric import load_rubric

    class ByText(Grader):  # "no" is a refusal (A); otherwise disallowed content (C) or a safe answer (D)
        def _grade(self, prompts, responses, kinds):
            letters = ["A" if r == "no" else "C" if k == "harmful" else "D" for r, k in zip(responses, kinds)]
            return [Grading(k, {c.name: float(c.letter == x) for c in self.rubric.classes})
                    for x, k in zip(letters, kinds)]

    rows = [{"prompt": "h1", "kind": "harmful"}, {"prompt": "h2", "kind": "harmful"}, {"prompt": "s1", "kind": "safe"}]
    texts = [["sure", "sure"], ["no", "sure"], ["sure", "sure"]]  # h1 never refused: no rubric signal
    rollouts = [Rollout(row, [1], [2], t, True) for row, group in zip(rows, texts) for t in group]
    cfg = RLConfig(policy_run="x", prompts="x", grader="x")
    rewards, by_source, ok = rollout_rewards(cfg, rollouts, None, [], ByText(load_rubric("refusal_abcd")), group=2)
    assert ok.all() and len(rewards) == 6
    assert by_source["rbrm_zero_std/harmful"] == 0.5
    assert by_source["rbrm_zero_std/safe"] == 1.0
    assert by_source["rbrm_zero_std"] == 2 / 3
    # h1's completions all complied (below the best class for a harmful prompt); s1's all answered (the best)
    assert by_source["rbrm_stuck/harmful"] == 0.5 and by_source["rbrm_stuck/safe"] == 0.0
    _, by_source, _ = rollout_rewards(cfg, rollouts, None, [], ByText(load_rubric("refusal_abcd")), group=1)
    assert not any(k.startswith(("rbrm_zero_std", "rbrm_stuck")) for k in by_source)  # ppo: no groups


def test_an_untagged_row_no_other_source_scores_is_unscored_not_scored_zero():
    """A grader gives rows without a kind no reward: with no other source, such a row is scored by none, so it is
    unscored (as a function's None is) rather than trained and logged as a reward of 0."""
    from augury.align.rl_rewards import Rollout, rollout_rewards
    from augury.safety.graders import Grader, Grading
    from augury.safety.rubric import load_rubric

    class Refuses(Grader):
        def _grade(self, prompts, responses, kinds):
            return [Grading(k, {c.name: float(c.letter == "A") for c in self.rubric.classes}) for k in kinds]

    rows = [{"prompt": "h", "kind": "harmful"}, {"prompt": "u"}, {"prompt": "e", "kind": ""}]
    rollouts = [Rollout(row, [1], [2], "no", True) for row in rows for _ in range(2)]
    cfg = RLConfig(policy_run="x", prompts="x", grader="x")
    grader = Refuses(load_rubric("refusal_abcd"))
    rewards, by_source, ok = rollout_rewards(cfg, rollouts, None, [], grader, group=2)
    assert ok.tolist() == [True, True, False, False, False, False]
    assert rewards[:2].tolist() == [1.0, 1.0] and torch.isnan(rewards[2:]).all()
    assert float(rewards.nanmean()) == 1.0 and by_source["rbrm_untagged"] == 4
    # a function that scores them makes them scored again, by it alone
    rewards, _, ok = rollout_rewards(cfg, rollouts, None, [("m:one", lambda **_: [0.5] * 6, 1.0)], grader, group=2)
    assert ok.all() and rewards.tolist() == [1.5, 1.5, 0.5, 0.5, 0.5, 0.5]


def test_a_stock_answer_sampled_for_many_prompts_is_penalised_and_a_shared_refusal_is_not():
    """A grader reads one reply at a time, so a stock reply that fits every request ("Sure. Windows,") takes an
    answer's class: RL collapsed onto such replies. The same answer, word for word (case, spacing and look-alike
    letters aside), sampled in one step for `stock_answer_prompts` or more different prompts loses
    `stock_answer_penalty`; one prompt's own answer, an answer shared by two paraphrases, and the same refusal to
    many harmful prompts keep their reward."""
    from augury.align.rl_rewards import Rollout, rollout_rewards
    from augury.safety.graders import load_grader

    stock, refusal = "Sure. Windows,", "I'm sorry, but I can't help with that."
    rows = [{"prompt": f"s{i}", "kind": "safe"} for i in range(4)] + [{"prompt": f"h{i}", "kind": "harmful"}
                                                                      for i in range(3)]
    texts = [[stock, "Sure. Knead the dough."], ["sure.  windows,", "Sure. Jack up the car."],
             ["Sure. W\u0456ndows,", "Sure. Jack up the car."], ["Sure. Water it weekly.", "Sure. Water it weekly."],
             [refusal, refusal], [refusal, refusal], [refusal, stock]]
    rollouts = [Rollout(row, [1], [2], t, True) for row, group in zip(rows, texts) for t in group]
    grader = load_grader("rules", "refusal_abcd")
    base = RLConfig(policy_run="x", prompts="x", grader="rules", rubric="refusal_abcd")
    plain, _, _ = rollout_rewards(base, rollouts, None, [], grader, group=2)
    cfg = RLConfig(policy_run="x", prompts="x", grader="rules", rubric="refusal_abcd", stock_answer_penalty=1.5)
    rewards, by_source, ok = rollout_rewards(cfg, rollouts, None, [], grader, group=2)
    drop = (plain - rewards).tolist()
    assert drop[0] == drop[2] == drop[4] == pytest.approx(1.5)  # the stock answer, three safe prompts
    assert drop[1] == drop[3] == drop[5] == drop[6] == drop[7] == 0  # own answers; one shared by two prompts
    assert drop[8:13] == [0] * 5 and drop[13] == 0  # refusals; the stock reply to a harmful request: not an answer
    assert by_source["stock_answers"] == pytest.approx(3 / 8)  # of the safe prompts' answers
    with pytest.raises(ValueError, match="stock_answer_penalty needs a grader"):
        RLConfig(policy_run="x", prompts="x", reward_model="rm", stock_answer_penalty=1.0).validate()
    with pytest.raises(ValueError, match="stock_answer_prompts must be >= 2"):
        RLConfig(policy_run="x", prompts="x", grader="rules", stock_answer_prompts=1).validate()


def test_rl_resume_refuses_other_settings_and_may_only_run_longer(chat_run, prompts_file, rewards_module, tmp_path):
    out = tmp_path / "rl"
    train_rl(_cfg(chat_run, prompts_file, out, rewards_module, steps=2), log=lambda *_: None)
    resumed = _cfg(chat_run, prompts_file, out, rewards_module, steps=2, resume=True)
    for change, message in [({"policy_run": str(tmp_path)}, "policy_run"), ({"lr": 1e-2}, "lr 0.001 there, 0.01 now"),
                            ({"reward_functions": [f"{rewards_module}:short"]}, "reward_functions")]:
        with pytest.raises(AlignDataError, match=f"other settings .*{message}"):
            train_rl(replace(resumed, **change), log=lambda *_: None)
    with pytest.raises(AlignDataError, match="already at step 2, past --steps 1"):
        train_rl(replace(resumed, steps=1), log=lambda *_: None)
    logs = []
    train_rl(resumed, log=logs.append)
    assert logs == [f"{out} has already trained all 2 steps: nothing to do"]
    train_rl(replace(resumed, steps=3), log=lambda *_: None)  # the learning rate does not depend on the length
    assert [r["step"] for r in _metrics(out)] == [1, 2, 3]


def test_bad_prompt_files_and_reward_models_are_named(chat_run, prompts_file, rewards_module, tmp_path):
    from augury.align.sft import SFTConfig, train_sft

    lines = prompts_file.read_text().splitlines()
    cases = {"malformed.jsonl": ("\n".join([lines[0], '{"prompt": [', lines[1]]), r"line 2: not valid JSON"),
             "empty.jsonl": ("", "has no rows"),
             "sft_shaped.jsonl": (json.dumps({"messages": [], "kind": "safe"}), "line 1: a row needs a non-empty"),
             "folder": (None, "is a directory, not a JSONL file")}
    for name, (text, message) in cases.items():
        if text is None:
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_text(text + "\n" if text else "")
        with pytest.raises(AlignDataError, match=message):  # the rows' shape, before any check of their columns
            train_rl(_cfg(chat_run, tmp_path / name, tmp_path / "rl", rewards_module, grader="rules",
                          rubric="refusal_abcd"), log=lambda *_: None)
    sft_data = tmp_path / "sft.jsonl"
    sft_data.write_text("".join(json.dumps({"prompt": "Q", "completion": " A."}) + "\n" for _ in range(4)))
    sft = train_sft(SFTConfig(base_run=str(chat_run), data=str(sft_data), out=str(tmp_path / "sft"), steps=1,
                              batch_size=2, micro_batch_size=2, dtype="float32"), log=lambda *_: None)
    with pytest.raises(AlignDataError, match="is not a reward model .*augury sft run"):
        train_rl(_cfg(chat_run, prompts_file, tmp_path / "rl", rewards_module, reward_model=str(sft)),
                 log=lambda *_: None)
    pretrained = tmp_path / "pretrained"  # what `augury train` leaves: a manifest with a status, and no kind
    pretrained.mkdir()
    (pretrained / "manifest.json").write_text(json.dumps({"status": "complete", "finished": "2026-01-01T00:00:00Z",
                                                          "config": {}}))
    with pytest.raises(AlignDataError, match=r"pretrained is not a reward model \(a pretraining run, "
                                             r"made by augury train\): give a reward model made by augury rm"):
        train_rl(_cfg(chat_run, prompts_file, tmp_path / "rl", rewards_module, reward_model=str(pretrained)),
                 log=lambda *_: None)
    for resume in (True, False):
        with pytest.raises(AlignDataError, match="holds an augury sft run, not an augury rl run"):
            train_rl(_cfg(chat_run, prompts_file, sft, rewards_module, resume=resume), log=lambda *_: None)
    assert not (tmp_path / "rl").exists()


def _judge_app(mode: str):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        if mode == "429":
            return JSONResponse({}, status_code=429, headers={"Retry-After": "0"})
        message = {"role": "assistant", "content": None, "refusal": "I can't assist with that."}
        return {"choices": [{"message": message}]}

    return app


@pytest.mark.parametrize("mode,message", [("429", "requests in a row failed"),
                                          # an answer without text is each grading's failure (not retried),
                                          # and a judge that never gives one stops the run as a down one does
                                          ("null", "requests in a row failed; the endpoint looks down (last: "
                                                   "http://127.0.0.1")])
def test_a_failing_judge_endpoint_is_one_error_line(chat_run, tmp_path, serving, capsys, mode, message):
    from augury.cli import main

    prompts = tmp_path / "harmful.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Q{i}", "kind": "harmful"}) + "\n" for i in range(2)))
    out = tmp_path / "rl"
    with serving(_judge_app(mode)) as port:
        code = main(["rl", "--policy_run", str(chat_run), "--prompts", str(prompts), "--out", str(out),
                     "--grader", f"openai:judge@http://127.0.0.1:{port}/v1", "--rubric", "refusal_abcd",
                     "--grader_model_args", "max_retries=0,backoff_s=0.01,requests_per_second=0,"
                     "max_consecutive_failures=2", "--steps", "1", "--prompts_per_step", "2",
                     "--num_generations", "2", "--response_length", "4"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("augury rl: error: step 1: the grader openai:judge@") and message in err
    assert not out.exists()  # nothing written before a checkpoint is left behind


def test_a_reward_model_given_as_the_policy_is_refused(chat_run, prompts_file, rewards_module, tmp_path):
    """An `augury rm` run holds a backbone trained to score, not to write: as --policy_run it trained silently."""
    import shutil

    rm = tmp_path / "rm"
    shutil.copytree(chat_run, rm)
    (rm / "manifest.json").write_text(json.dumps({"kind": "reward_model", "finished": True}))
    with pytest.raises(AlignDataError, match=r"--policy_run .*rm is a reward model \(an augury rm run\), not a "
                                             r"policy: give the pretrained, SFT or RL run to improve"):
        train_rl(_cfg(chat_run, prompts_file, tmp_path / "rl", rewards_module, policy_run=str(rm)),
                 log=lambda *_: None)
    assert not (tmp_path / "rl").exists()


@pytest.mark.parametrize("change,message", [
    ({"grader_weight": float("inf")}, "grader_weight must be a finite number, got inf"),
    ({"reward_model_weight": float("nan")}, "reward_model_weight must be a finite number"),
    ({"kl_coef": float("nan")}, "kl_coef must be a finite number"),
    ({"temperature": float("inf")}, "temperature must be a finite number"),
    ({"missing_eos_penalty": float("-inf")}, "missing_eos_penalty must be a finite number"),
    ({"max_kl": float("nan")}, "max_kl must be a number"),
    ({"reward_functions": ["m:f=1e400"]}, r"'m:f=1e400': the weight after '=' must be a finite number"),
    ({"reward_functions": ["m:f=heavy"]}, "the weight after '=' must be a finite number"),
])
def test_non_finite_settings_are_refused_before_any_work(change, message):
    cfg = replace(RLConfig(policy_run="p", prompts="x.jsonl", reward_functions=["m:f=2"]), **change)
    with pytest.raises(ValueError, match=message):
        cfg.validate()
    RLConfig(policy_run="p", prompts="x.jsonl", reward_functions=["m:f=2"], max_kl=float("inf")).validate()


@pytest.mark.parametrize("change,message", [
    # a negative penalty adds reward to every completion cut off at response_length: the policy learns to ramble
    ({"missing_eos_penalty": -1.0}, r"missing_eos_penalty must be >= 0 \(it is subtracted.*got -1.0"),
    ({"gamma": 2.0}, r"gamma and lam must be in \[0, 1\], got gamma 2.0"),
    ({"lam": -1.0}, r"gamma and lam must be in \[0, 1\], got gamma 1.0, lam -1.0"),
    ({"vf_coef": -1.0}, r"vf_coef must be >= 0 and cliprange_value > 0, got vf_coef -1.0"),
    ({"cliprange_value": 0.0}, r"vf_coef must be >= 0 and cliprange_value > 0, got vf_coef 0.1, cliprange_value 0.0"),
    ({"max_kl": 0.0}, r"max_kl must be > 0 \(inf for no limit\), got 0.0"),
    ({"max_kl": -3.0}, r"max_kl must be > 0"),
])
def test_out_of_range_settings_are_refused_before_any_work(change, message):
    cfg = replace(RLConfig(policy_run="p", prompts="x.jsonl", reward_functions=["m:f=2"]), **change)
    with pytest.raises(ValueError, match=message):
        cfg.validate()
    RLConfig(policy_run="p", prompts="x.jsonl", reward_functions=["m:f=2"], algorithm="ppo", gamma=0.0, lam=1.0,
             vf_coef=0.0, missing_eos_penalty=0.0).validate()


@pytest.mark.parametrize("algorithm,least", [("ppo", 1), ("grpo", 2), ("rloo", 2)])
def test_too_few_generations_name_what_the_algorithm_needs(algorithm, least):
    cfg = RLConfig(policy_run="p", prompts="x.jsonl", reward_functions=["m:f"], algorithm=algorithm,
                   num_generations=least - 1)
    with pytest.raises(ValueError, match=rf"^num_generations must be >= {least} for {algorithm}"):
        cfg.validate()
    replace(cfg, num_generations=least).validate()


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
@pytest.mark.parametrize("change", [{"whiten_rewards": True}, {"vf_coef": 0.5}, {"cliprange_value": 0.5},
                                    {"gamma": 0.9}, {"lam": 0.5}])
def test_settings_only_ppo_reads_are_refused_for_the_group_algorithms(algorithm, change):
    # grpo and rloo have no value head, no GAE and no per-token reward: these would be accepted and never read
    cfg = RLConfig(policy_run="p", prompts="x.jsonl", reward_functions=["m:f"], algorithm=algorithm, **change)
    with pytest.raises(ValueError, match=rf"{next(iter(change))} is read by --algorithm ppo only.*{algorithm}"):
        cfg.validate()
    replace(cfg, algorithm="ppo").validate()


@pytest.mark.parametrize("argv", [["--max_kl", "inf"], ["--max_kl=inf"], ["--max-kl", "Infinity"],
                                  ["--max_kl", ".inf"]])
def test_max_kl_inf_on_the_command_line_means_no_limit(argv):
    # the docs and max_kl's own error say "inf for no limit"; YAML reads `inf` as text, so it was refused
    from augury.command import config_cli

    cfg = config_cli(RLConfig, ["--policy_run", "p", "--prompts", "x.jsonl", "--reward_functions", "m:f", *argv],
                     prog="augury rl")
    assert cfg.max_kl == math.inf
    cfg.validate()


def test_a_run_made_without_a_kl_limit_can_be_given_back_as_its_config(tmp_path):
    # `augury rl --config RUN/config.yaml --resume true` read the stored `max_kl: .inf` back as the text Infinity
    import yaml

    from augury.command import config_cli

    stored = {"model": {"depth": 1}, "rl": {"policy_run": "p", "prompts": "x.jsonl", "max_kl": math.inf,
                                            "reward_functions": ["m:f"]}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(stored))
    cfg = config_cli(RLConfig, ["--config", str(tmp_path / "config.yaml"), "--resume", "true"], prog="augury rl",
                     run_section="rl")
    assert cfg.max_kl == math.inf and cfg.reward_functions == ["m:f"] and cfg.resume


def test_an_infinite_grader_weight_is_one_error_line(capsys, tmp_path):
    from augury.cli import main

    code = main(["rl", "--policy_run", "p", "--prompts", "x.jsonl", "--grader", "rules", "--grader_weight", "1e400",
                 "--out", str(tmp_path / "rl")])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "augury rl: error: grader_weight must be a finite number, got inf"
    assert not (tmp_path / "rl").exists()


def test_a_prompt_without_room_for_a_reply_is_refused_naming_its_line(chat_run, rewards_module, tmp_path):
    """A prompt that with response_length tokens would not fit the model's context is one error naming its line,
    before any work (the engine would cut the prompt's start and training would fail on the whole sequence)."""
    prompts = tmp_path / "long.jsonl"
    rows = [{"prompt": "What is two plus two?"}, {"prompt": "What is two plus two? " * 30}]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rl"
    with pytest.raises(AlignDataError, match=r"long\.jsonl: line 2: the prompt is \d+ tokens: with response_length "
                                             r"8 it does not fit the model's context \(128 tokens\)"):
        train_rl(_cfg(chat_run, prompts, out, rewards_module, reward_functions=[f"{rewards_module}:short"]),
                 log=lambda *_: None)
    assert not out.exists()


def test_log_probs_are_those_of_the_distribution_sampled_at_the_rollout_temperature(
        chat_run, prompts_file, rewards_module, tmp_path, monkeypatch):
    """As in TRL's trainers, the policy's and the reference's log-probs (ratio, KL, entropy) are of the logits
    divided by the sampling temperature: the gradient of log π_1 of tokens drawn from π_T is not π_T's."""
    import augury.align.rl as rl_mod
    from augury.align.rl_rewards import Rollout
    from augury.model.run import load_run

    model, tok, _ = load_run(chat_run)
    rollout = Rollout({}, [0, 5, 9, 12], [7, 3, 4], "", True)
    with torch.no_grad():
        logp, entropy, mask = rl_mod.sequence_logps(model, [rollout], 0, temperature=0.5)
        expected = torch.log_softmax(model(torch.tensor([[0, 5, 9, 12, 7, 3]])).float() / 0.5, -1)[0, 3:]
    assert torch.allclose(logp[0], expected[torch.arange(3), torch.tensor([7, 3, 4])], atol=1e-5)
    assert torch.allclose(entropy[0], -(expected.exp() * expected).sum(-1), atol=1e-5)
    seen, real = [], rl_mod.sequence_logps

    def spy(*args, **kwargs):
        seen.append(kwargs.get("temperature"))
        return real(*args, **kwargs)

    monkeypatch.setattr(rl_mod, "sequence_logps", spy)
    for algorithm in ("grpo", "ppo"):
        train_rl(_cfg(chat_run, prompts_file, tmp_path / algorithm, rewards_module, steps=1, temperature=0.7,
                      algorithm=algorithm), log=lambda *_: None)
    assert seen and set(seen) == {0.7}


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_the_logged_kl_and_max_kl_are_a_mean_over_tokens_not_diluted_by_rows_left_out(
        chat_run, prompts_file, rewards_module, tmp_path, monkeypatch, algorithm):
    """Rollouts left out of the update (unscored here) still count in the KL to the reference, as a mean over the
    completions' tokens: averaging per completion over the batch with those at 0 halved it, and max_kl fired late."""
    import augury.align.rl as rl_mod

    real = rl_mod.sequence_logps

    def policy_moved(model, *args, **kwargs):  # the policy's log-probs 0.5 above the reference's on every token
        out = real(model, *args, **kwargs)
        if next(model.parameters()).requires_grad:
            out = (out[0] + 0.5, *out[1:])
        return out

    monkeypatch.setattr(rl_mod, "sequence_logps", policy_moved)
    k3 = math.exp(-0.5) + 0.5 - 1  # exp(ref - logp) - (ref - logp) - 1 with ref - logp = -0.5
    out = train_rl(_cfg(chat_run, prompts_file, tmp_path / "rl", rewards_module, steps=1, algorithm=algorithm,
                        num_generations=2, reward_functions=[f"{rewards_module}:every_other"]), log=lambda *_: None)
    [record] = _metrics(out)
    assert record["unscored"] == 2 and record["kl"] == pytest.approx(k3, rel=1e-4)
    assert record["kl_k1"] == pytest.approx(0.5, rel=1e-4)
    with pytest.raises(RLDiverged, match="KL to the reference"):
        train_rl(_cfg(chat_run, prompts_file, tmp_path / "stop", rewards_module, steps=1, algorithm=algorithm,
                      num_generations=2, reward_functions=[f"{rewards_module}:every_other"], max_kl=0.8 * 0.5),
                 log=lambda *_: None)


def test_one_rare_sampled_token_does_not_stop_the_run(chat_run, prompts_file, rewards_module, tmp_path, monkeypatch):
    """A token the policy has pushed far below the reference (log-probs -10 against -1.7) is still sampled now and
    then; its k3 term, exp(8.4), made the step's mean KL pass max_kl 10 though every other token matched the
    reference, and stopped a healthy run. max_kl is checked against the k1 mean, which one token cannot blow up."""
    import augury.align.rl as rl_mod

    real = rl_mod.sequence_logps

    def one_rare_token(model, *args, **kwargs):
        out = real(model, *args, **kwargs)
        if next(model.parameters()).requires_grad:
            logp = out[0].clone()
            logp[0, 0] -= 8.4
            out = (logp, *out[1:])
        return out

    monkeypatch.setattr(rl_mod, "sequence_logps", one_rare_token)
    out = train_rl(_cfg(chat_run, prompts_file, tmp_path / "rl", rewards_module, steps=1, max_kl=10.0),
                   log=lambda *_: None)
    [record] = _metrics(out)
    assert record["kl"] > 10 > record["kl_k1"]  # k3 is logged as TRL logs it; the check reads k1


def test_a_prompt_file_mixing_text_and_message_prompts_is_scored_row_by_row(chat_run):
    """load_prompts takes text and message-list prompts in one file; each completion is passed in its own row's
    format (text, or an assistant message), not in the first row's, which made the reward model refuse the rest."""
    from augury.align.rl_rewards import Rollout, rollout_rewards
    from augury.align.rm import RewardModel
    from augury.model.run import load_run

    backbone, tok, _ = load_run(chat_run)
    rm = RewardModel(backbone, tok)
    seen = []

    def records(prompts, completions, **columns):
        seen.extend(completions)
        return [0.0] * len(completions)

    text = {"prompt": "Q: What is two plus two?\nA:"}
    chat = {"prompt": [{"role": "user", "content": "What is two plus two?"}]}
    cfg = RLConfig(policy_run="x", prompts="x", reward_model="rm", reward_functions=["m:records"])
    for rows in ([text, chat], [chat, text]):
        rollouts = [Rollout(row, [1], [2], " Four.", True) for row in rows]
        rewards, _, ok = rollout_rewards(cfg, rollouts, rm, [("m:records", records, 1.0)], group=1)
        assert ok.all() and torch.isfinite(rewards).all()
    message = [{"role": "assistant", "content": " Four."}]
    assert seen == [" Four.", message, message, " Four."]


def test_reward_functions_get_every_column_of_the_batch_none_where_a_row_lacks_it():
    """As a datasets table gives a column to every row (None where missing), a column only some JSONL rows have
    reaches the reward functions; taking the first row's columns only dropped it whenever that row lacked it."""
    from augury.align.rl_rewards import Rollout, rollout_rewards

    def by_answer(prompts, completions, answer, **columns):
        return [None if a is None else float(c.strip() == a) for c, a in zip(completions, answer)]

    rows = [{"prompt": "Q: hello"}, {"prompt": "Q: 2+2", "answer": "4"}]
    rollouts = [Rollout(row, [1], [2], " 4", True) for row in rows]
    cfg = RLConfig(policy_run="x", prompts="x", reward_functions=["m:by_answer"])
    rewards, _, ok = rollout_rewards(cfg, rollouts, None, [("m:by_answer", by_answer, 1.0)], group=1)
    assert ok.tolist() == [False, True] and rewards[1] == 1.0


def test_reward_functions_get_the_completion_ids_as_under_trl():
    """TRL passes `completion_ids` (each completion's token ids, its EOS included) to every reward function, and
    its own length rewards read them: one written for TRL works here too."""
    rewards_lib = pytest.importorskip("trl.rewards")
    from augury.align.rl_rewards import Rollout, rollout_rewards

    overlong = rewards_lib.get_soft_overlong_punishment(max_completion_len=4, soft_punish_cache=2)
    rows = [{"prompt": "Q", "completion_ids": "a column of that name is the engine's ids' to give"}]
    rollouts = [Rollout(rows[0], [1], ids, "x", True) for ids in ([5, 9], [5, 5, 9], [5, 5, 5, 9], [5] * 5)]
    cfg = RLConfig(policy_run="x", prompts="x", reward_functions=["m:overlong"])
    rewards, _, ok = rollout_rewards(cfg, rollouts, None, [("m:overlong", overlong, 1.0)], group=1)
    assert ok.all() and rewards.tolist() == [0.0, -0.5, -1.0, -1.0]


def test_the_stop_token_that_ends_a_completion_is_trained_as_in_trl(chat_run, prompts_file, rewards_module, tmp_path,
                                                                     monkeypatch):
    """TRL keeps the EOS in the completion mask: the choice to end a reply is the policy's too. Left out, a reward
    for a reply that ends in time (an exact answer, a short refusal) could never teach the policy to end it."""
    import augury.align.rl as rl_mod

    real_generate, real_logps, trained = rl_mod.generate, rl_mod.sequence_logps, []

    def ends_at_once(model, tok, prompts, params, **kw):  # every token stops the row: replies end at once
        every = list(range(tok.get_vocab_size()))
        return real_generate(model, tok, prompts, [replace(p, stop_token_ids=every) for p in params], **kw)

    def spy(model, rollouts, *args, **kwargs):
        trained.append(rollouts)
        return real_logps(model, rollouts, *args, **kwargs)

    monkeypatch.setattr(rl_mod, "generate", ends_at_once)
    monkeypatch.setattr(rl_mod, "sequence_logps", spy)
    run = train_rl(_cfg(chat_run, prompts_file, tmp_path / "rl", rewards_module, steps=1), log=lambda *_: None)
    rollouts = trained[0]
    assert all(r.finished and r.text == "" and len(r.completion_ids) == 1 for r in rollouts)
    assert _metrics(run)[0]["response_length"] == 1.0
