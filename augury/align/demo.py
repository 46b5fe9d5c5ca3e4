"""`augury rl-demo`: a CPU demonstration that RL improves a model on a task with a programmatic reward.

    augury rl-demo --preset arithmetic --seed 0 --out runs/rl-demo-s0     # pretrain → SFT → RL → report
    augury rl-demo --preset arithmetic --rl.steps 50 --base_run runs/quickstart   # reuse a pretrained run

The task is two-number addition written as a doctest (`>>> 12 + 35` then `47`, augury.align.arithmetic), with an
exact-answer reward that cannot be gamed by emitting several numbers. Stages, each in its own subfolder of `out` and
each skipped when already finished (an interrupted one resumes from its last checkpoint): `data` (SFT
demonstrations and RL prompts from the training problems; the held-out problems, split by the unordered pair of
operands), `pretrain` (a small model on the standard library, `augury train`; skipped with `--base_run`), `sft`
(`augury sft` on a few demonstrations), `eval-sft` (the SFT model on the held-out problems), `rl` (`augury rl` with
the exact-answer reward; the held-out evaluation runs every `rl.eval_every` steps and lands in rl/metrics.jsonl)
and `report` (report.md, curves.png, results.json). Held-out reward is the mean reward of one sampled completion
per problem at the rollout temperature, with the same sampling seed per problem for every model; accuracy is greedy
exact match. `manifest.json` says `finished: true` only when the report is written.
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from augury.align.runs import (
    Stage,
    StagedRun,
    StageFailed,
    check_base_run,
    last_metric,
    resumable,
    settings,
    stage_status,
)
from augury.io import atomic_write_json, atomic_write_text

PRESETS = Path(__file__).resolve().parents[2] / "configs" / "align"
REWARD = "augury.align.arithmetic:exact_answer"


@dataclass
class TaskSettings:
    """The problems.

    Args:
        max_operand: operands run from 0 to this.
        ops: operators, "+" and/or "-".
        held_out: share of the problems held out (by unordered operand pair), never trained on.
        eval_problems: held-out problems evaluated (a fixed subset, the same for every seed).
        sft_examples: training problems with a demonstration (the SFT set; RL prompts are all training problems).
    """

    max_operand: int = 99
    ops: str = "+"
    held_out: float = 0.2
    eval_problems: int = 400
    sft_examples: int = 4000


@dataclass
class PretrainSettings:
    """The base model (standard-library Python, the default corpus).

    Args:
        depth: Transformer blocks.
        d_model: width.
        vocab_size: BPE vocabulary.
        tokens: pretraining tokens.
        seq_len: context length.
        batch_size: sequences per step.
        lr: peak learning rate.
        max_bytes: bytes of the standard library read.
    """

    depth: int = 2
    d_model: int = 128
    vocab_size: int = 2048
    tokens: int = 3_000_000
    seq_len: int = 256
    batch_size: int = 16
    lr: float = 0.006
    max_bytes: int = 8_000_000


@dataclass
class SFTSettings:
    """Supervised fine-tuning (`augury sft`).

    Args:
        steps: optimizer steps.
        batch_size: demonstrations per step.
        lr: peak learning rate.
    """

    steps: int = 500
    batch_size: int = 32
    lr: float = 3e-3


@dataclass
class RLSettings:
    """RL with the exact-answer reward.

    Args:
        algorithm: grpo, rloo or ppo (augury rl).
        steps: optimizer steps.
        prompts_per_step: prompts per step.
        num_generations: completions per prompt.
        response_length: most tokens per completion.
        temperature: sampling temperature of rollouts and of the held-out reward.
        lr: learning rate.
        kl_coef: KL penalty to the SFT model.
        eval_every: held-out evaluation every this many steps (and at the last).
    """

    algorithm: Literal["grpo", "rloo", "ppo"] = "grpo"
    steps: int = 200
    prompts_per_step: int = 16
    num_generations: int = 8
    response_length: int = 8
    temperature: float = 1.0
    lr: float = 1e-4
    kl_coef: float = 0.02
    eval_every: int = 20


@dataclass
class DemoConfig:
    """`augury rl-demo` settings (a preset YAML plus dotted overrides; the defaults are the arithmetic preset's).

    Args:
        out: the run folder (stages in subfolders).
        seed: the seed of every stage (the problem split does not depend on it).
        base_run: a pretrained augury run to start from ("" pretrains one).
        task: the problems.
        pretrain: the base model.
        sft: supervised fine-tuning.
        rl: reinforcement learning.
    """

    out: str = "runs/rl-demo"
    seed: int = 0
    base_run: str = ""
    task: TaskSettings = field(default_factory=TaskSettings)
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    sft: SFTSettings = field(default_factory=SFTSettings)
    rl: RLSettings = field(default_factory=RLSettings)

    def validate(self) -> None:
        from augury.align.arithmetic import arithmetic_problems

        arithmetic_problems(1, self.task.ops)  # checks ops
        if self.task.max_operand < 2 or not 0 < self.task.held_out < 1:
            raise ValueError("task.max_operand must be >= 2 and task.held_out in (0, 1)")
        for name in ("task.eval_problems", "task.sft_examples", "pretrain.tokens", "sft.steps", "rl.steps",
                     "rl.eval_every"):
            section, key = name.split(".")
            if getattr(getattr(self, section), key) < 1:
                raise ValueError(f"{name} must be >= 1")
        check_base_run(self.base_run)
        self.rl_config().validate()  # now, not after the stages before RL have run

    def rl_config(self, resume: bool = False):
        """The `augury rl` settings of the RL stage (an RLConfig)."""
        from augury.align.rl_config import RLConfig

        r, out = self.rl, Path(self.out)
        return RLConfig(policy_run=str(out / "sft"), prompts=str(out / "data" / "rl_prompts.jsonl"),
                        out=str(out / "rl"), algorithm=r.algorithm, steps=r.steps, prompts_per_step=r.prompts_per_step,
                        num_generations=r.num_generations, response_length=r.response_length,
                        temperature=r.temperature, lr=r.lr, kl_coef=r.kl_coef, reward_functions=[REWARD],
                        seed=self.seed, ckpt_every=r.eval_every, resume=resume)


@dataclass
class HeldOut:
    """One model's held-out scores."""

    step: int  # RL step (0: the SFT model)
    reward: float  # mean reward of one sampled completion per problem
    accuracy: float  # greedy exact match
    n: int  # problems

    def record(self) -> dict:
        from augury.evals.graded import wilson_interval

        r_lo, r_hi = wilson_interval(round(self.reward * self.n), self.n)
        a_lo, a_hi = wilson_interval(round(self.accuracy * self.n), self.n)
        return {"step": self.step, "heldout_reward": self.reward, "heldout_reward_ci95": [r_lo, r_hi],
                "heldout_accuracy": self.accuracy, "heldout_accuracy_ci95": [a_lo, a_hi], "heldout_n": self.n}


def held_out_scores(model, tok, problems, temperature: float, max_tokens: int, seed: int, step: int) -> HeldOut:
    """Greedy accuracy and sampled reward on `problems`; sampling seeds depend on `seed` and the problem only, so
    every model is scored on the same random numbers. Uses its own generators: the global RNG is untouched."""
    import torch

    from augury.align.arithmetic import is_exact
    from augury.data.tokenizer import encode_documents
    from augury.model.generate import SamplingParams, generate

    eot = tok.token_to_id("<|endoftext|>")
    prompts = [[eot, *ids] for ids in encode_documents(tok, [p.prompt for p in problems])]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        greedy = generate(model, tok, prompts, SamplingParams(max_tokens=max_tokens, temperature=0,
                                                              stop_token_ids=[eot]))
        sampled = generate(model, tok, prompts, [
            SamplingParams(max_tokens=max_tokens, temperature=temperature, stop_token_ids=[eot],
                           seed=seed * 1_000_003 + i) for i in range(len(prompts))])
    model.train(was_training)
    n = len(problems)
    return HeldOut(step, sum(is_exact(g.text, p.answer) for g, p in zip(sampled, problems)) / n,
                   sum(is_exact(g.text, p.answer) for g, p in zip(greedy, problems)) / n, n)


class Demo(StagedRun):
    kind = "rl-demo"

    def run(self) -> Path:
        cfg = self.cfg
        cfg.validate()
        self.claim_output()
        # each stage's settings (a later stage's output also depends on the earlier ones', checked in their own
        # right); the held-out scores sample with RL's temperature and length, so the SFT evaluation names them
        cfg_of = functools.partial(settings, cfg)
        stages = [Stage("data", lambda: (self.data / "manifest.json").is_file(), self.make_data,
                        cfg_of("seed", "task"))]
        if not cfg.base_run:
            stages.append(Stage("pretrain", lambda: stage_status(self.out / "pretrain") == "complete", self.pretrain,
                                cfg_of("seed", "pretrain")))
        stages += [
            Stage("sft", lambda: stage_status(self.out / "sft") is True, self.sft, cfg_of("seed", "base_run", "sft")),
            Stage("eval-sft", lambda: (self.out / "eval" / "sft.json").is_file(), self.evaluate_sft,
                  cfg_of("seed", "rl.temperature", "rl.response_length")),
            Stage("rl", lambda: stage_status(self.out / "rl") is True, self.rl, cfg_of("seed", "rl")),
            Stage("report", lambda: (self.out / "report.md").is_file(), self.report, {}),
        ]
        self.run_stages(stages)
        return self.out

    def problems(self):
        """(training problems, the evaluated held-out problems)."""
        from augury.align.arithmetic import arithmetic_problems, split_problems

        t = self.cfg.task
        train, held = split_problems(arithmetic_problems(t.max_operand, t.ops), t.held_out)
        random.Random(0).shuffle(held)  # a fixed subset: the same for every seed
        return train, held[:t.eval_problems]

    # -- stages ---------------------------------------------------------------------------------------------
    def make_data(self) -> dict:
        from augury.align.arithmetic import prompt_rows, sft_rows

        train, held = self.problems()
        demos = random.Random(self.cfg.seed).sample(train, min(self.cfg.task.sft_examples, len(train)))
        files = {"sft.jsonl": sft_rows(demos), "rl_prompts.jsonl": prompt_rows(train),
                 "held_out.jsonl": prompt_rows(held)}
        self.data.mkdir(parents=True, exist_ok=True)
        for name, rows in files.items():
            atomic_write_text(self.data / name, "".join(json.dumps(r) + "\n" for r in rows))
        counts = {name: len(rows) for name, rows in files.items()}
        atomic_write_json(self.data / "manifest.json", {"rows": counts})
        return {"rows": counts}

    def pretrain(self) -> dict:
        from augury.data import DataConfig
        from augury.model import ModelConfig
        from augury.train.config import OptimConfig, TrainConfig
        from augury.train.trainer import train

        p = self.cfg.pretrain
        tcfg = TrainConfig(out=str(self.out / "pretrain"),
                           model=ModelConfig(depth=p.depth, d_model=p.d_model, head_dim=32),
                           data=DataConfig(source="stdlib", vocab_size=p.vocab_size, max_bytes=p.max_bytes),
                           optim=OptimConfig(lr=p.lr), seq_len=p.seq_len, batch_size=p.batch_size,
                           tokens=p.tokens, seed=self.cfg.seed, eval_every=0, ckpt_every=200, log_every=50,
                           progress=False)
        summary = train(tcfg, resume="auto", log=self.log)
        return {"val_loss": summary.get("final_val_loss")}

    def sft(self) -> dict:
        from augury.align.sft import SFTConfig, train_sft

        s, out = self.cfg.sft, self.out / "sft"
        train_sft(SFTConfig(base_run=str(self.base_run), data=str(self.data / "sft.jsonl"), held_out=0.05,
                            out=str(out), steps=s.steps, batch_size=s.batch_size, micro_batch_size=s.batch_size,
                            lr=s.lr, eval_every=0, ckpt_every=50, seed=self.cfg.seed, resume=resumable(out)),
                  log=self.log)
        return {"val_loss": last_metric(out, "val_loss")}

    def _score(self, model, tok, step: int) -> HeldOut:
        r = self.cfg.rl
        return held_out_scores(model, tok, self.problems()[1], r.temperature, r.response_length, self.cfg.seed,
                               step)

    def evaluate_sft(self) -> dict:
        from augury.model.run import load_run

        scores = {}
        for name, run in (("base", self.base_run), ("sft", self.out / "sft")):
            model, tok, _ = load_run(run)
            scores[name] = self._score(model, tok, 0).record()
            self.log(f"[eval] {name}: held-out reward {scores[name]['heldout_reward']:.3f}, "
                     f"accuracy {scores[name]['heldout_accuracy']:.3f}")
        (self.out / "eval").mkdir(exist_ok=True)
        atomic_write_json(self.out / "eval" / "base.json", scores["base"])
        atomic_write_json(self.out / "eval" / "sft.json", scores["sft"])
        return {name: {k: v for k, v in s.items() if k in ("heldout_reward", "heldout_accuracy")}
                for name, s in scores.items()}

    def rl(self) -> dict:
        from augury.align.rl import RL_FAILURES, train_rl

        r, out = self.cfg.rl, self.out / "rl"
        rl_cfg = self.cfg.rl_config(resume=resumable(out))
        tok = None

        def after_step(step: int, policy) -> dict:
            nonlocal tok
            if step % r.eval_every and step != r.steps:
                return {}
            if tok is None:
                from augury.data.tokenizer import load_tokenizer

                tok = load_tokenizer(out / "tokenizer.json")
            scores = self._score(policy, tok, step).record()
            self.log(f"[eval] step {step}: held-out reward {scores['heldout_reward']:.3f}, "
                     f"accuracy {scores['heldout_accuracy']:.3f}")
            return {k: v for k, v in scores.items() if k != "step"}

        try:
            train_rl(rl_cfg, log=self.log, after_step=after_step)
        except RL_FAILURES as err:
            raise StageFailed("rl", err) from None
        return {"final_reward": last_metric(out, "reward")}

    def report(self) -> dict:
        from augury.align.demo_report import write_report

        results = write_report(self.out, self.cfg)
        atomic_write_json(self.out / "results.json", results)
        return {k: results[k] for k in ("sft", "rl")}


def main(argv: list[str]) -> int:
    from augury.align.runs import run_command
    from augury.command import config_cli, preset_option, spaced_option
    from augury.errors import UsageError

    names = sorted(p.stem.removeprefix("rl-demo-") for p in PRESETS.glob("rl-demo-*.yaml"))
    argv = spaced_option(list(argv), "--preset")
    if "--preset" in argv:
        i = argv.index("--preset")
        path = PRESETS / f"rl-demo-{argv[i + 1]}.yaml" if i + 1 < len(argv) else None
        if path is None or not path.is_file():
            raise UsageError(f"--preset needs one of: {', '.join(names)}")
        argv[i:i + 2] = ["--config", str(path)]
    cfg = config_cli(DemoConfig, argv, prog="augury rl-demo", description=__doc__.split("\n")[0],
                     listed=preset_option(names, "configs/align/rl-demo-NAME.yaml"))
    try:
        cfg.validate()
    except ValueError as err:
        raise UsageError(str(err)) from None
    return run_command(Demo(cfg), "augury rl-demo")
