"""`augury rl` (group-relative): it trains, logs what it should, resumes exactly, and refuses bad reward sources."""

from __future__ import annotations

import json

import pytest
import torch

from augury.align.rl import RewardError, RLConfig, RLDiverged, train_rl

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
                "response_length", "clip_fraction"):
        assert all(key in r and r[key] == r[key] for r in rows), key
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # the first step starts at the reference
    assert json.loads((out / "manifest.json").read_text())["finished"] is True
    from augury.model.run import load_run

    load_run(out)  # an ordinary run


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
