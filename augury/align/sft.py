"""`augury sft`: supervised fine-tuning of a pretrained run on conversations, loss on the assistant's tokens.

    augury sft --base_run runs/quickstart --data sft.jsonl --out runs/sft --steps 200
    augury sft --config runs/sft/config.yaml --resume true        # continue an interrupted run exactly

The output folder is an ordinary augury run (config.yaml with the model, tokenizer.json, checkpoints, a
metrics.jsonl and a manifest.json), so `augury sample --chat`, `augury export` and `augury eval` take it as is.
The loss of an optimizer step is the mean over every counted token of all its micro-batches (masked-out tokens
and padding never count; a micro-batch without a counted token adds 0); validation is the same mean over the
held-out conversations. Examples are not packed: each row is one sequence, padded on the right, so no token
attends across conversations. The order of examples is a seeded permutation per epoch, so a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from augury.align.data import AlignDataError, SFTExample, read_jsonl, sft_example, split_held_out, tokenize_rows
from augury.align.losses import masked_token_loss
from augury.align.runs import (
    RunStopped,
    check_resumed_settings,
    checkpoint_note,
    open_output,
    refuse_reward_model,
    removed_on_failure,
    stage_status,
    start_output,
    write_manifest,
)
from augury.io import append_jsonl


@dataclass
class SFTConfig:
    """Supervised fine-tuning settings.

    Args:
        base_run: the pretrained augury run to start from (its newest intact checkpoint and its tokenizer).
        data: JSONL in TRL's shapes: {"messages": [...]} or {"prompt", "completion"}.
        eval_data: held-out JSONL; empty: `held_out` of `data`, split by conversation.
        held_out: share of `data` held out for validation when `eval_data` is empty (at least one row when > 0).
        out: the new run's folder.
        steps: optimizer steps.
        batch_size: sequences per optimizer step.
        micro_batch_size: sequences per forward/backward (gradient accumulation over the rest).
        lr: peak learning rate (warm-up, then cosine decay to a tenth of it).
        warmup_steps: linear warm-up steps.
        weight_decay: AdamW weight decay.
        grad_clip: gradient-norm clip (0: none).
        eval_every: validation every this many steps (0: only at the end).
        ckpt_every: checkpoint every this many steps (0: only at the end).
        seed: data order and dropout-free training are determined by it.
        dtype: autocast dtype on CPU/GPU.
        resume: continue the run in `out` from its newest checkpoint, with the settings it was made with (only
            out, eval_every, ckpt_every, micro_batch_size and dtype may change).
    """

    base_run: str = ""
    data: str = ""
    eval_data: str = ""
    held_out: float = 0.05
    out: str = "runs/sft"
    steps: int = 200
    batch_size: int = 16
    micro_batch_size: int = 8
    lr: float = 1e-4
    warmup_steps: int = 10
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 50
    ckpt_every: int = 100
    seed: int = 0
    dtype: Literal["float32", "bfloat16"] = "bfloat16"
    resume: bool = False

    def validate(self) -> None:
        if not self.base_run or not self.data:
            raise ValueError("--base_run and --data are required")
        refuse_reward_model(self.base_run, "--base_run", "a pretrained (or SFT) run to fine-tune")
        if self.steps < 1 or self.batch_size < 1 or self.micro_batch_size < 1:
            raise ValueError("steps, batch_size and micro_batch_size must be >= 1")
        if self.batch_size % self.micro_batch_size:
            raise ValueError("batch_size must be a multiple of micro_batch_size")
        if not 0 <= self.held_out < 1:
            raise ValueError("held_out must be in [0, 1)")
        if not 0 < self.lr <= 1 or self.warmup_steps < 0:
            raise ValueError(f"lr must be in (0, 1] (got {self.lr:g}) and warmup_steps >= 0")
        for name in ("weight_decay", "grad_clip", "eval_every", "ckpt_every"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 (got {getattr(self, name)})")


# What a resumed run may change: where it goes, how often it checkpoints and validates, and how each batch is
# split and computed (micro-batches, autocast dtype); anything else would make it another run.
RESUMABLE = ("out", "resume", "eval_every", "ckpt_every", "micro_batch_size", "dtype")


class SFTDiverged(RunStopped):
    pass


def batch_tensors(examples: list[SFTExample], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, targets, mask), each (B, T-1): right-padded, mask True where a target token is counted."""
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.bool)
    for i, e in enumerate(examples):
        ids[i, :len(e.ids)] = torch.tensor(e.ids)
        mask[i, :len(e.ids)] = torch.tensor(e.loss_mask)
    return ids[:, :-1], ids[:, 1:], mask[:, 1:]


def lr_at(step: int, cfg: SFTConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def order(n: int, seed: int, step: int, batch: int) -> list[int]:
    """Indices of the examples of optimizer step `step` (a fresh seeded permutation per epoch)."""
    out, start = [], step * batch
    while len(out) < batch:
        epoch, offset = divmod(start + len(out), n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        out += perm[offset:offset + batch - len(out)].tolist()
    return out


def evaluate(model, examples: list[SFTExample], pad_id: int, micro: int, autocast) -> float:
    """Mean loss per counted token over `examples`."""
    total = sum(sum(e.loss_mask[1:]) for e in examples)
    loss = 0.0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(examples), micro):
            x, y, m = batch_tensors(examples[i:i + micro], pad_id)
            with autocast():
                loss += float(masked_token_loss(model(x), y, m, total))
    model.train()
    return loss


def train_sft(cfg: SFTConfig, log=print) -> Path:
    from augury.model.run import load_run
    from augury.train.checkpoint import load_checkpoint
    from augury.train.resume import trim_metrics

    cfg.validate()
    out = Path(cfg.out)
    ckpt = open_output(out, cfg.resume, "sft")
    if ckpt is not None:
        check_resumed_settings(out, "sft", cfg, RESUMABLE)
    model, tok, mcfg = load_run(ckpt.parent.parent if ckpt else cfg.base_run)
    max_len = mcfg.max_seq_len
    rows = read_jsonl(cfg.data)
    if cfg.eval_data:
        train_rows, held_rows = rows, read_jsonl(cfg.eval_data)
    else:
        train_rows, held_rows = split_held_out(rows, cfg.held_out, at_least_one=True)
    def example(row):
        return sft_example(tok, row, max_len)

    train, train_report = tokenize_rows(train_rows, example, cfg.data)
    held, held_report = tokenize_rows(held_rows, example, cfg.eval_data or f"{cfg.data} (held out)")
    if not train:
        raise AlignDataError(f"{cfg.data}: no usable training rows")
    if cfg.eval_data and not held:
        raise AlignDataError(f"--eval_data {cfg.eval_data} has no usable rows ({held_report.summary()})")
    log(train_report.summary())
    log(held_report.summary() if held else
        f"{cfg.data}: no row held out{' (--held_out 0)' if not cfg.held_out else ''}: no validation loss")
    pad_id = tok.token_to_id("<|pad|>") or 0

    torch.manual_seed(cfg.seed)
    model.train()
    optimizer = torch.optim.AdamW(model.param_groups(cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))
    data = {"train": train_report.summary(), "held_out": held_report.summary()}
    if ckpt is not None:
        step = load_checkpoint(ckpt, model, optimizer)["step"]
        if step >= cfg.steps:
            log(f"{out} has already trained all {cfg.steps} steps: nothing to do")
            if stage_status(out) is not True:  # stopped between its last checkpoint and its manifest
                write_manifest(out, "sft", base_run=str(cfg.base_run), data=data, finished=True, steps=step)
            return out
        log(f"resuming {out} at step {step}")
        trim_metrics(out / "metrics.jsonl", step)  # the steps after the checkpoint are redone, not logged twice
        _train(cfg, out, model, optimizer, train, held, pad_id, step, log)
    else:
        with removed_on_failure(out):
            start_output(out, cfg.base_run, mcfg, "sft", cfg)
            write_manifest(out, "sft", base_run=str(cfg.base_run), data=data, finished=False)
            _train(cfg, out, model, optimizer, train, held, pad_id, 0, log)
    write_manifest(out, "sft", base_run=str(cfg.base_run), data=data, finished=True, steps=cfg.steps)
    return out


def _train(cfg: SFTConfig, out: Path, model, optimizer, train: list[SFTExample], held: list[SFTExample],
           pad_id: int, step: int, log) -> None:
    from augury.train.checkpoint import save_checkpoint

    use_bf16 = cfg.dtype == "bfloat16"

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()

    t0 = time.perf_counter()
    while step < cfg.steps:
        for g in optimizer.param_groups:
            g["lr"] = lr_at(step, cfg) * g.get("lr_mult", 1.0)
        batch = [train[i] for i in order(len(train), cfg.seed, step, cfg.batch_size)]
        n_tokens = sum(sum(e.loss_mask[1:]) for e in batch)
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for i in range(0, len(batch), cfg.micro_batch_size):
            x, y, m = batch_tensors(batch[i:i + cfg.micro_batch_size], pad_id)
            with autocast():
                loss = masked_token_loss(model(x), y, m, n_tokens)
            loss.backward()
            step_loss += float(loss.detach())
        if not math.isfinite(step_loss):
            raise SFTDiverged(f"step {step + 1}: loss is {step_loss}; {checkpoint_note(out)}")
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1
        record = {"step": step, "train_loss": step_loss, "lr": lr_at(step - 1, cfg), "tokens": n_tokens,
                  "elapsed_s": time.perf_counter() - t0}
        if held and (step == cfg.steps or (cfg.eval_every and step % cfg.eval_every == 0)):
            record["val_loss"] = evaluate(model, held, pad_id, cfg.micro_batch_size, autocast)
            log(f"step {step}: train {step_loss:.4f}, val {record['val_loss']:.4f}")
        append_jsonl(out / "metrics.jsonl", record)
        if step == cfg.steps or (cfg.ckpt_every and step % cfg.ckpt_every == 0):
            save_checkpoint(out, step, model, optimizer, {"step": step})


def main(argv: list[str]) -> int:
    from augury.command import config_cli
    from augury.errors import UsageError

    cfg = config_cli(SFTConfig, argv, prog="augury sft", description=__doc__.split("\n")[0],
                     run_section="sft")
    try:
        cfg.validate()
        train_sft(cfg)
    except (ValueError, AlignDataError) as err:
        raise UsageError(str(err)) from None
    except SFTDiverged as err:
        import sys

        print(f"augury sft: error: {err}", file=sys.stderr)
        return 1
    return 0
