"""The settings of `augury align` (AlignConfig: a section per stage) and their checks; pipeline.py runs them.

    cfg = AlignConfig(out="runs/align-s0", seed=0, rl=RLSettings(steps=20))
    cfg.validate()                  # ValueError naming the setting (the RL stage's too, before any stage runs)
    rl_config(cfg)                  # the `augury rl` settings of the RL stage (an RLConfig)

The presets in configs/align/ set these (`augury align --preset cpu-demo`); the defaults are the cpu-demo preset's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from augury.align.runs import check_base_run

# The RBRM RL is rewarded by: the shipped rule functions under the GPT-4 report's A-D rubric (augury/safety/).
RL_GRADER, RL_RUBRIC = "rules", "refusal_abcd"


@dataclass
class PretrainSettings:
    """The base model.

    Args:
        depth: Transformer blocks (the size dial).
        vocab_size: BPE vocabulary of the pretraining text.
        tokens: pretraining tokens.
        seq_len: context length (also the SFT/RL models' context).
        batch_size: sequences per step.
        lr: peak learning rate.
        stdlib_bytes: bytes of standard-library docstrings and comments in the text.
    """

    depth: int = 2
    vocab_size: int = 2048
    tokens: int = 1_200_000
    seq_len: int = 256
    batch_size: int = 16
    lr: float = 0.006
    stdlib_bytes: int = 1_000_000


@dataclass
class SFTSettings:
    """Supervised fine-tuning.

    Args:
        steps: optimizer steps.
        batch_size: conversations per step.
        lr: peak learning rate.
        hh_conversations: helpful HH-RLHF conversations (training split) in the mix.
        pretraining_documents: transcripts from the base model's own text (other training-split conversations)
            added as plain `text` rows, the loss over all of it, so SFT keeps the base model's language modelling.
        harmful_share: share of the training harmful families given refusal demonstrations (RL sees them all).
        desired_style_share: share of refusal demonstrations in the desired style (the rest undesired).
    """

    steps: int = 500
    batch_size: int = 16
    lr: float = 3e-3
    hh_conversations: int = 100
    pretraining_documents: int = 0
    harmful_share: float = 0.5
    desired_style_share: float = 0.3


@dataclass
class RMSettings:
    """Reward model.

    Args:
        steps: optimizer steps.
        batch_size: preference pairs per step.
        lr: peak learning rate.
        hh_pairs: HH-RLHF helpful pairs (training split) in the preference data.
    """

    steps: int = 40
    batch_size: int = 16
    lr: float = 3e-4
    hh_pairs: int = 100


@dataclass
class RLSettings:
    """RL with RM + RBRM rewards.

    Args:
        algorithm: grpo, rloo or ppo (augury rl).
        steps: optimizer steps.
        prompts_per_step: prompts per step.
        balance_kinds: draw harmful and safe prompts in equal numbers each step (else uniformly over all prompts).
        num_generations: completions per prompt.
        response_length: most tokens per completion.
        lr: learning rate.
        kl_coef: KL penalty to the SFT model.
        reward_model_weight: weight of the reward model's score.
        rubric_weight: weight of the rubric's class reward (the RBRM).
        stock_answer_penalty: taken from an answer the step also sampled, word for word, for two or more other
            prompts (augury rl's): a stock reply that fits every request, which the rubric alone pays as an answer.
    """

    algorithm: Literal["grpo", "rloo", "ppo"] = "grpo"
    steps: int = 400
    prompts_per_step: int = 8
    balance_kinds: bool = True
    num_generations: int = 4
    response_length: int = 24
    lr: float = 2e-4
    kl_coef: float = 0.05
    reward_model_weight: float = 0.5
    rubric_weight: float = 1.0
    stock_answer_penalty: float = 1.0


@dataclass
class EvalSettings:
    """Evaluation.

    Args:
        max_tokens: most tokens per reply (greedy).
        advbench: AdvBench prompts evaluated (the first n; 0: none).
        xstest: include XSTest (both halves).
        mc_questions: multiple-choice questions (0: not measured, left out of the report).
        loss_texts: held-out HH-RLHF transcripts for the loss (0: not measured, left out of the report).
    """

    max_tokens: int = 24
    advbench: int = 50
    xstest: bool = True
    mc_questions: int = 50
    loss_texts: int = 50


@dataclass
class AlignConfig:
    """`augury align` settings (a preset YAML plus dotted overrides; the defaults are the cpu-demo preset's).

    Args:
        out: the run folder (stages in subfolders).
        seed: the seed of every stage (the family split does not depend on it).
        base_run: a pretrained augury run to start from instead of the `pretrain` stage ("" pretrains one); what
            it was trained on is then the user's to keep clear of the evaluation sets.
        data_dir: the shared data folder (hh-rlhf, rbr-gold, advbench, xstest); "" reads $AUGURY_SHARED_DATA.
        held_out: share of the prompt families (of each kind) held out for evaluation.
        hh_held_out: share of HH-RLHF conversations held out (by first turn) from every training stage.
        pretrain: the base model.
        sft: supervised fine-tuning.
        rm: the reward model.
        rl: reinforcement learning.
        eval: the evaluation.
    """

    out: str = "runs/align"
    seed: int = 0
    base_run: str = ""
    data_dir: str = ""
    held_out: float = 0.3
    hh_held_out: float = 0.15
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    sft: SFTSettings = field(default_factory=SFTSettings)
    rm: RMSettings = field(default_factory=RMSettings)
    rl: RLSettings = field(default_factory=RLSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)

    def validate(self) -> None:
        if not 0 < self.held_out < 1 or not 0 < self.hh_held_out < 1:
            raise ValueError("held_out and hh_held_out must be in (0, 1)")
        if not 0 <= self.sft.harmful_share <= 1 or not 0 <= self.sft.desired_style_share <= 1:
            raise ValueError("sft.harmful_share and sft.desired_style_share must be in [0, 1]")
        for least, names in ((0, ("sft.hh_conversations", "sft.pretraining_documents", "rm.hh_pairs", "eval.advbench",
                                  "eval.mc_questions", "eval.loss_texts")),
                             (1, ("pretrain.tokens", "sft.steps", "rm.steps", "rl.steps", "eval.max_tokens"))):
            for name in names:
                section, key = name.split(".")
                if getattr(getattr(self, section), key) < least:
                    raise ValueError(f"{name} must be >= {least}")
        for sub in ("hh-rlhf/helpful-base/test.jsonl.gz", "rbr-gold/train.jsonl"):
            if not (Path(self.shared_data()) / sub).is_file():
                raise ValueError(f"{Path(self.shared_data()) / sub} is missing: set --data_dir "
                                 f"(or $AUGURY_SHARED_DATA)")
        check_base_run(self.base_run)
        rl_config(self).validate()  # now, not after the stages before RL have run

    def shared_data(self) -> str:
        return self.data_dir or os.environ.get("AUGURY_SHARED_DATA", "../shared/data")


def rl_config(cfg: AlignConfig, resume: bool = False):
    """The `augury rl` settings of the RL stage (an RLConfig)."""
    from augury.align.rl_config import RLConfig

    r, out = cfg.rl, Path(cfg.out)
    return RLConfig(policy_run=str(out / "sft"), prompts=str(out / "data" / "rl_prompts.jsonl"), out=str(out / "rl"),
                    algorithm=r.algorithm, steps=r.steps, prompts_per_step=r.prompts_per_step,
                    balance_column="kind" if r.balance_kinds else "", num_generations=r.num_generations,
                    response_length=r.response_length, lr=r.lr, kl_coef=r.kl_coef, reward_model=str(out / "rm"),
                    reward_model_weight=r.reward_model_weight, grader=RL_GRADER, rubric=RL_RUBRIC,
                    grader_weight=r.rubric_weight, stock_answer_penalty=r.stock_answer_penalty, seed=cfg.seed,
                    ckpt_every=10, resume=resume)
