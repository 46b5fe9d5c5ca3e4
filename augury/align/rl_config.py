"""The settings of `augury rl` (RLConfig, TRL's names where TRL has one) and their checks; augury/align/rl.py runs
them, and `augury align` / `augury rl-demo` build one for their RL stage (and check it before their first stage).

    cfg = RLConfig(policy_run="runs/sft", prompts="prompts.jsonl", reward_functions=["my_rewards:exact_match"])
    cfg.validate()                                   # ValueError naming the setting
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Literal


@dataclass
class RLConfig:
    """RL settings (TRL's names where TRL has one).

    Args:
        policy_run: the augury run to improve (usually an SFT run); also the frozen reference for the KL penalty.
        prompts: JSONL rows with a `prompt` (text, or a message list for the chat format) and any other columns,
            which reward functions receive by name.
        out: the new run's folder.
        algorithm: ppo (value head, GAE, KL in the reward), grpo (advantage = reward minus the group mean, over the
            group std) or rloo (leave-one-out baseline); the last two need no value model.
        steps: optimizer steps (one batch of rollouts each).
        prompts_per_step: prompts sampled per step (a file with fewer rows gives some of them more than once).
        balance_column: a prompt column (e.g. kind) whose values each step draws in equal numbers, so that every
            step trains on each value (a kind that rarely appears in a step is otherwise pushed around by the
            others' updates); "" draws prompts uniformly.
        num_generations: completions per prompt (the group).
        response_length: most new tokens per completion.
        temperature: sampling temperature of the rollouts; the log-probs of the loss and the KL divide the logits
            by it too (as TRL does).
        lr: learning rate (constant after a short warm-up).
        kl_coef: weight of the KL penalty to the reference policy: (grpo, rloo) the k3 estimate averaged per
            completion, in the loss (as TRL's GRPO `beta`; not TRL's RLOO `beta`, which penalises the reward);
            (ppo) the per-token log-ratio, in the per-token reward.
        cliprange: PPO clipping of the probability ratio.
        num_ppo_epochs: gradient steps on each batch of rollouts.
        vf_coef: (ppo) weight of the value loss.
        cliprange_value: (ppo) clipping of the value update.
        gamma: (ppo) discount.
        lam: (ppo) GAE's lambda.
        whiten_rewards: (ppo) whiten the per-token rewards of each batch before GAE.
        missing_eos_penalty: subtracted from the reward of a completion that hit response_length unfinished.
        mask_truncated_completions: leave completions that hit response_length unfinished out of the loss (they
            still count in their group's baseline), as TRL does: a reply cut off is graded as it stands, and a
            cut refusal or answer should not teach either way.
        reward_model: an `augury rm` folder ("" for none).
        reward_model_weight: its weight in the summed reward.
        reward_functions: "module:function" or "module:function=weight" (importable, TRL's signature).
        grader: a rule-based reward model ("" for none): a grader spec of augury.safety.graders (offline,
            offline:PATH, rules, rules:MODULE:ATTR, openai:MODEL@URL, augury:RUN, hf:PATH). Rows tagged with a
            prompt kind get the rubric's expected class reward times grader_weight; untagged rows get none.
        rubric: the grader's rubric: a shipped name (default, refusal_abcd, toxicity) or a YAML file.
        grader_weight: the class reward's weight in the summed reward.
        grader_model_args: options of a judge model's backend, key=value,... (e.g. timeout_s=30).
        kind_column: the prompt row's column naming its kind (harmful, safe: the rubric's kinds).
        stock_answer_penalty: subtracted, times the grader's probability that the reply answers, from a
            completion whose text (read as a person reads it, case and spacing aside) the step also sampled for
            other prompts, `stock_answer_prompts` in all: a stock reply that fits every request, which a grader
            reading one reply at a time classes as an answer (0: off). Needs a grader.
        stock_answer_prompts: how many different prompts make a shared answer a stock one (2 paraphrases of one
            request may well share their answer).
        max_grader_failures: the share of a step's graded rollouts that may fail (endpoint errors, answers
            outside the rubric) before the run stops; failed rollouts are left out of the update, never scored 0.
        max_kl: stop when the KL to the reference (k1, log π − log π_ref averaged over the step's completion
            tokens: the logged kl_k1) exceeds this.
        seed: prompt order and generation seeds.
        ckpt_every: checkpoint every this many steps (and at the end).
        resume: continue the run in `out` from its newest checkpoint, with the settings it was made with (only
            out, steps, ckpt_every, max_kl, max_grader_failures and grader_model_args may change).
    """

    policy_run: str = ""
    prompts: str = ""
    out: str = "runs/rl"
    algorithm: Literal["ppo", "grpo", "rloo"] = "grpo"
    steps: int = 50
    prompts_per_step: int = 4
    balance_column: str = ""
    num_generations: int = 4
    response_length: int = 48
    temperature: float = 1.0
    lr: float = 1e-5
    kl_coef: float = 0.05
    cliprange: float = 0.2
    num_ppo_epochs: int = 1
    vf_coef: float = 0.1
    cliprange_value: float = 0.2
    gamma: float = 1.0
    lam: float = 0.95
    whiten_rewards: bool = False
    missing_eos_penalty: float = 0.0
    mask_truncated_completions: bool = False
    reward_model: str = ""
    reward_model_weight: float = 1.0
    reward_functions: list[str] = field(default_factory=list)
    grader: str = ""
    rubric: str = "default"
    grader_weight: float = 1.0
    grader_model_args: str = ""
    kind_column: str = "kind"
    stock_answer_penalty: float = 0.0
    stock_answer_prompts: int = 3
    max_grader_failures: float = 0.5
    max_kl: float = 10.0
    seed: int = 0
    ckpt_every: int = 10
    resume: bool = False

    def validate(self) -> None:
        if not self.policy_run or not self.prompts:
            raise ValueError("--policy_run and --prompts are required")
        if not self.reward_model and not self.reward_functions and not self.grader:
            raise ValueError("give at least one reward source: --reward_model, --reward_functions and/or --grader")
        if not 0 <= self.max_grader_failures <= 1:
            raise ValueError("max_grader_failures is a share of the rollouts, between 0 and 1")
        if self.algorithm == "ppo" and self.num_generations < 1:
            raise ValueError(f"num_generations must be >= 1 for ppo, got {self.num_generations}")
        if self.algorithm != "ppo" and self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 for {self.algorithm} (advantages are relative to the "
                             f"group), got {self.num_generations}")
        for name in ("steps", "prompts_per_step", "response_length", "num_ppo_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0 < self.lr <= 1 or self.kl_coef < 0 or not 0 < self.cliprange < 1 or self.temperature <= 0:
            raise ValueError("0 < lr <= 1, kl_coef >= 0, 0 < cliprange < 1 and temperature > 0 are required")
        if self.ckpt_every < 0:
            raise ValueError("ckpt_every must be >= 0")
        # a NaN passes every comparison above and an infinite weight makes every reward inf: the loss is NaN at step 1
        for name in ("lr", "kl_coef", "cliprange", "temperature", "vf_coef", "cliprange_value", "gamma", "lam",
                     "missing_eos_penalty", "reward_model_weight", "grader_weight", "max_grader_failures",
                     "stock_answer_penalty"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if math.isnan(self.max_kl):
            raise ValueError("max_kl must be a number (inf for no limit)")
        if self.max_kl <= 0:  # the KL is >= 0: the run would stop at its first step
            raise ValueError(f"max_kl must be > 0 (inf for no limit), got {self.max_kl}")
        if self.missing_eos_penalty < 0:  # a negative one would reward every completion cut off unfinished
            raise ValueError(f"missing_eos_penalty must be >= 0 (it is subtracted from the reward of a completion "
                             f"cut off at response_length), got {self.missing_eos_penalty}")
        if self.stock_answer_penalty < 0:
            raise ValueError(f"stock_answer_penalty must be >= 0, got {self.stock_answer_penalty}")
        if self.stock_answer_penalty and not self.grader:
            raise ValueError("stock_answer_penalty needs a grader (--grader): it penalises replies graded as answers")
        if self.stock_answer_prompts < 2:
            raise ValueError(f"stock_answer_prompts must be >= 2, got {self.stock_answer_prompts}")
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ValueError(f"gamma and lam must be in [0, 1], got gamma {self.gamma}, lam {self.lam}")
        if self.vf_coef < 0 or self.cliprange_value <= 0:
            raise ValueError(f"vf_coef must be >= 0 and cliprange_value > 0, got vf_coef {self.vf_coef}, "
                             f"cliprange_value {self.cliprange_value}")
        if self.algorithm != "ppo":  # no value head, GAE or per-token reward: a change would never be read
            changed = [f.name for f in fields(self) if f.name in PPO_ONLY and getattr(self, f.name) != f.default]
            if changed:
                raise ValueError(f"{', '.join(changed)} is read by --algorithm ppo only (the value head, GAE and "
                                 f"the per-token reward), not by {self.algorithm}")
        for spec in self.reward_functions:
            _, eq, weight = spec.partition("=")
            try:
                ok = not eq or math.isfinite(float(weight))
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"reward function {spec!r}: the weight after '=' must be a finite number")


# The settings of --algorithm ppo's value head, GAE and per-token reward, which grpo and rloo do not have
PPO_ONLY = ("vf_coef", "cliprange_value", "gamma", "lam", "whiten_rewards")

# What a resumed run may change: where it goes, how often it checkpoints, its safety stops, a judge's backend
# options, and its length (the learning rate does not depend on it); anything else would make it another run.
RESUMABLE = ("out", "resume", "steps", "ckpt_every", "max_kl", "max_grader_failures", "grader_model_args")
