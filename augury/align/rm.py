"""`augury rm`: a reward model (a run's backbone and a scalar head on the last token), Bradley–Terry on pairs.

    augury rm --base_run runs/sft --data prefs.jsonl --out runs/rm --steps 200
    augury rm --base_run runs/sft --hh_rlhf ../shared/data/hh-rlhf/helpful-base/test.jsonl.gz --out runs/rm

    rm = load_reward_model("runs/rm"); rm.score(prompts, completions)    # one float per pair, higher is better

Data: `prompt`/`chosen`/`rejected` rows (plain strings, or message lists), or an HH-RLHF file parsed into
conversations; pairs are split into training and held-out by conversation. The report gives held-out pairwise
accuracy (chosen scored above rejected) with a 95% Wilson interval. The output folder is the backbone as an
augury run plus `reward_head.safetensors`; it is written once, at the end (a reward model is small to retrain),
and `manifest.json` says `finished: true` only then.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from augury.align.data import (
    AlignDataError,
    PreferencePair,
    hh_rlhf_rows,
    preference_pair,
    read_jsonl,
    scored_sequence,
    split_held_out,
    tokenize_rows,
    with_prompt,
)
from augury.align.losses import bradley_terry_loss
from augury.align.runs import RunStopped, refuse_reward_model, start_output, write_manifest
from augury.evals.graded import wilson_interval
from augury.io import append_jsonl, not_a_folder


@dataclass
class RMConfig:
    """Reward-model training settings.

    Args:
        base_run: the augury run whose backbone is fine-tuned (usually the SFT run).
        data: JSONL of prompt/chosen/rejected rows (TRL's preference shape).
        hh_rlhf: an HH-RLHF file (Human:/Assistant: transcripts, .jsonl.gz) instead of `data`.
        held_out: share of the pairs held out, by conversation, for the accuracy.
        out: the reward model's folder.
        steps: optimizer steps.
        batch_size: pairs per step.
        lr: peak learning rate (warm-up then cosine decay to a tenth).
        warmup_steps: linear warm-up steps.
        seed: data order.
        dtype: autocast dtype.
        center_rewards_coefficient: TRL's: adds it x mean((r_chosen + r_rejected)^2) to the loss, keeping the
            rewards near zero (0.01 is TRL's suggestion); unset: no such term.
    """

    base_run: str = ""
    data: str = ""
    hh_rlhf: str = ""
    held_out: float = 0.1
    out: str = "runs/rm"
    steps: int = 200
    batch_size: int = 16
    lr: float = 5e-5
    warmup_steps: int = 10
    seed: int = 0
    dtype: Literal["float32", "bfloat16"] = "bfloat16"
    center_rewards_coefficient: float | None = None

    def validate(self) -> None:
        c = self.center_rewards_coefficient
        if c is not None and not (math.isfinite(c) and c >= 0):
            raise ValueError(f"center_rewards_coefficient must be a finite number >= 0 (got {c})")
        if not self.base_run or bool(self.data) == bool(self.hh_rlhf):
            raise ValueError("--base_run and exactly one of --data / --hh_rlhf are required")
        refuse_reward_model(self.base_run, "--base_run", "a pretrained or SFT run for the reward model's backbone")
        if self.steps < 1 or self.batch_size < 1 or self.warmup_steps < 0:
            raise ValueError("steps and batch_size must be >= 1, warmup_steps >= 0")
        if not 0 < self.lr <= 1:
            raise ValueError(f"lr must be in (0, 1] (got {self.lr:g})")
        if not 0 < self.held_out < 1:
            raise ValueError("held_out must be in (0, 1)")


class RMDiverged(RunStopped):
    pass


class RewardModel(torch.nn.Module):
    """Backbone + linear head on the hidden state of each sequence's last real token."""

    def __init__(self, backbone, tokenizer=None):
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Linear(backbone.cfg.d_model, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self.tokenizer = tokenizer

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids (B, T) right-padded, lengths (B,) -> rewards (B,)."""
        hidden = self.backbone(ids, return_hidden=True)
        last = hidden[torch.arange(ids.shape[0]), lengths - 1]
        return self.head(last.float()).squeeze(-1)

    @torch.no_grad()
    def score(self, prompts: list, completions: list) -> list[float]:
        """Rewards of (prompt, completion) pairs: plain strings, or message lists (conversational); every
        completion is scored (an empty one as it stands, a long pair on its last max_seq_len tokens)."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        if not prompts:
            return []
        seqs = [scored_sequence(self.tokenizer, p, c, self.backbone.cfg.max_seq_len, strict=False)
                for p, c in zip(prompts, completions)]
        self.eval()
        ids, lengths = pad(seqs, 0)
        return [float(v) for v in self(ids, lengths)]


def pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
    return ids, torch.tensor([len(s) for s in seqs])


def pairwise_accuracy(rm: RewardModel, pairs: list[PreferencePair], batch: int = 16) -> dict:
    """Share of held-out pairs whose chosen reply scores above the rejected one, a tie counting half (as the
    align report's win rate does): a head that scores everything alike, as the zero-initialised one does, is at
    chance, 0.5, not 0. With the mean margin r_chosen − r_rejected (TRL's `margin` metric)."""
    wins, ties, margin = 0.0, 0, 0.0
    rm.eval()
    with torch.no_grad():
        for i in range(0, len(pairs), batch):
            chunk = pairs[i:i + batch]
            ids, lengths = pad([p.chosen for p in chunk] + [p.rejected for p in chunk], 0)
            r = rm(ids, lengths)
            chosen, rejected = r[:len(chunk)], r[len(chunk):]
            tied = int((chosen == rejected).sum())
            wins += int((chosen > rejected).sum()) + 0.5 * tied
            margin += float((chosen - rejected).sum())
            ties += tied
    rm.train()
    lo, hi = wilson_interval(wins, len(pairs)) if pairs else (0.0, 1.0)
    return {"accuracy": wins / max(1, len(pairs)), "interval_95": [lo, hi], "pairs": len(pairs), "ties": ties,
            "margin": margin / max(1, len(pairs))}


def train_rm(cfg: RMConfig, log=print) -> Path:
    from augury.model.run import load_run
    from augury.train.checkpoint import save_checkpoint

    cfg.validate()
    out = Path(cfg.out)
    if why := not_a_folder(out):
        raise AlignDataError(f"--out {why}")
    if out.exists() and any(out.iterdir()):
        raise AlignDataError(f"--out {out} exists and is not empty")
    backbone, tok, mcfg = load_run(cfg.base_run)
    if cfg.hh_rlhf:
        rows, hh_report = hh_rlhf_rows(cfg.hh_rlhf)
        if hh_report.skipped:  # transcripts that are no preference pair
            log(hh_report.summary())
    else:
        rows = read_jsonl(cfg.data)
    rows = [with_prompt(r) for r in rows]  # implicit-prompt rows: split by the prompt they share
    train_rows, held_rows = split_held_out(rows, cfg.held_out, key=lambda r: str(r.get("prompt") if r else r)[:2000])
    def pair(row):
        return preference_pair(tok, row, mcfg.max_seq_len)

    train, train_report = tokenize_rows(train_rows, pair, cfg.hh_rlhf or cfg.data)
    held, held_report = tokenize_rows(held_rows, pair, f"{cfg.hh_rlhf or cfg.data} (held out)")
    if not train or not held:
        raise AlignDataError("need usable pairs on both sides of the held-out split")
    log(train_report.summary())
    log(held_report.summary())
    torch.manual_seed(cfg.seed)
    rm = RewardModel(backbone, tok)
    rm.train()
    optimizer = torch.optim.AdamW(rm.parameters(), lr=cfg.lr, betas=(0.9, 0.95))
    use_bf16 = cfg.dtype == "bfloat16"
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:  # the folder appears under its name only when complete; a failure leaves nothing behind
        rng = np.random.default_rng(cfg.seed)
        t0 = time.perf_counter()
        before = pairwise_accuracy(rm, held)
        for step in range(1, cfg.steps + 1):
            progress = max(0, step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
            lr = cfg.lr * (step / cfg.warmup_steps if step <= cfg.warmup_steps else
                           0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
            for g in optimizer.param_groups:
                g["lr"] = lr
            chunk = [train[i] for i in rng.integers(0, len(train), cfg.batch_size)]
            ids, lengths = pad([p.chosen for p in chunk] + [p.rejected for p in chunk], 0)
            with autocast():
                r = rm(ids, lengths)
            margin = torch.tensor([p.margin for p in chunk])
            loss = bradley_terry_loss(r[:len(chunk)].float(), r[len(chunk):].float(), margin,
                                      cfg.center_rewards_coefficient)
            if not torch.isfinite(loss):
                raise RMDiverged(f"step {step}: the loss is {float(loss.detach())}; nothing was written to {out}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
            optimizer.step()
            append_jsonl(tmp / "metrics.jsonl", {"step": step, "loss": float(loss.detach()), "lr": lr,
                                                 "elapsed_s": time.perf_counter() - t0})
        after = pairwise_accuracy(rm, held)
        log(f"held-out pairwise accuracy {after['accuracy']:.3f} [{after['interval_95'][0]:.3f}, "
            f"{after['interval_95'][1]:.3f}] on {after['pairs']} pairs (untrained head: {before['accuracy']:.3f})")
        start_output(tmp, cfg.base_run, mcfg, "rm", cfg)
        save_checkpoint(tmp, cfg.steps, rm.backbone, optimizer=torch.optim.SGD([torch.zeros(1)], lr=0.0),
                        trainer_state={"step": cfg.steps})
        head = {k: v.detach().contiguous() for k, v in rm.head.state_dict().items()}
        save_file(head, str(tmp / "reward_head.safetensors"))
        write_manifest(tmp, "reward_model", base_run=str(cfg.base_run),
                       data={"train": train_report.summary(), "held_out": held_report.summary()},
                       held_out_accuracy=after, held_out_accuracy_untrained=before, finished=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out


def load_reward_model(path: str | Path) -> RewardModel:
    """A reward model written by `augury rm` (refuses an unfinished folder)."""
    import json

    from augury.model.run import load_run

    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict):
        raise AlignDataError(f"{path} is not a finished reward model (no finished manifest.json)")
    kind = manifest.get("kind") or "train"  # a pretraining run's manifest names no kind
    if kind != "reward_model":
        what = "a pretraining run, made by augury train" if kind == "train" else f"an augury {kind} run"
        raise AlignDataError(f"{path} is not a reward model ({what}): give a reward model made by augury rm")
    if not manifest.get("finished"):
        raise AlignDataError(f"{path} is not a finished reward model (no finished manifest.json)")
    if not (path / "reward_head.safetensors").is_file():
        raise AlignDataError(f"{path} is not a usable reward model (no reward_head.safetensors): make it again "
                             f"with augury rm")
    backbone, tok, _ = load_run(path)
    rm = RewardModel(backbone, tok)
    rm.head.load_state_dict(load_file(str(path / "reward_head.safetensors")))
    return rm.eval()


def main(argv: list[str]) -> int:
    from augury.command import config_cli
    from augury.errors import UsageError

    cfg = config_cli(RMConfig, argv, prog="augury rm", description=__doc__.split("\n")[0],
                     run_section="rm")
    try:
        train_rm(cfg)
    except (ValueError, AlignDataError) as err:
        raise UsageError(str(err)) from None
    except RMDiverged as err:
        import sys

        print(f"augury rm: error: {err}", file=sys.stderr)
        return 1
    return 0
