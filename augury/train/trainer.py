"""The pretraining loop: AdamW, schedules, clipping, accumulation, autocast, validation, exact resume.

    from augury.train import TrainConfig, train
    summary = train(TrainConfig(out="runs/demo", steps=200))

One JSONL record per log step goes to RUN/metrics.jsonl (step, tokens, flops, train_loss, val_loss,
val_bpb, lr, tokens_per_s, mfu); RUN/manifest.json holds the config, package versions, git hash, seed, counts
and status. A non-finite loss stops the run with `TrainingDiverged` naming the step; the last checkpoint, written
before it, stays the newest.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from augury.data import TokenLoader, iter_val_batches, prepare_data
from augury.io import (
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    git_hash,
    package_versions,
    read_jsonl,
    to_jsonable,
    utc_now,
)
from augury.model import Transformer, flops_per_token, param_counts
from augury.train.checkpoint import (
    checkpoint_to_resume,
    find_latest_checkpoint,
    load_checkpoint,
    remove_unstarted_run,
    save_checkpoint,
    save_sharded_checkpoint,
)
from augury.train.config import TrainConfig, TrainConfigError, resolve, tokens_per_step
from augury.train.resume import (
    carry_over,
    check_resume_compatible,
    data_identity,
    keep_validation_batches,
    trim_metrics,
)
from augury.train.runtime import Runtime, hardware_peak_flops, setup_runtime, teardown_runtime
from augury.train.schedule import lr_multiplier
from augury.train.step import make_optimizer, train_step


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def token_byte_lengths(tokenizer) -> np.ndarray:
    """UTF-8 bytes each token id stands for (special tokens: 0), for exact bits-per-byte.

    In a byte-level BPE vocabulary each character of a token's string stands for exactly one byte.
    """
    vocab = tokenizer.get_vocab_size()
    lengths = np.zeros(vocab, dtype=np.int64)
    special = (set(tokenizer.get_added_tokens_decoder().keys()) if hasattr(tokenizer, "get_added_tokens_decoder")
               else set())
    for i in range(vocab):
        if i in special:
            continue
        tok = tokenizer.id_to_token(i)
        lengths[i] = len(tok) if tok is not None else 0
    return lengths


@torch.no_grad()
def evaluate(model, rt: Runtime, val_path, batch_size: int, seq_len: int, max_batches: int | None,
             byte_lengths: torch.Tensor, sharded: bool = False) -> dict:
    """Mean validation loss (nats/token) and bits/byte over a fixed set of validation batches.

    `sharded` (FSDP2): called on every process, which share the batches (augury.train.fsdp.evaluate_sharded)."""
    if sharded:
        from augury.train.fsdp import evaluate_sharded

        batches = list(iter_val_batches(val_path, batch_size, seq_len, max_batches))
        nats, tokens, nbytes = evaluate_sharded(model, rt, batches, byte_lengths) if batches else (0.0, 0, 0)
    else:
        model.eval()
        nats, tokens, nbytes = 0.0, 0, 0
        for x, y in iter_val_batches(val_path, batch_size, seq_len, max_batches):
            x, y = x.to(rt.device), y.to(rt.device)
            with rt.autocast():
                losses = model(x, targets=y, reduction="none")
            nats += float(losses.double().sum())
            tokens += y.numel()
            nbytes += int(byte_lengths[y.cpu()].sum())
        model.train()
    if tokens == 0:
        raise TrainConfigError(f"validation split {val_path} is too small for one batch of {batch_size}x{seq_len}")
    loss = nats / tokens
    return {"val_loss": loss, "val_bpb": nats / math.log(2) / max(nbytes, 1), "val_tokens": tokens}


def _global_mean(rt: Runtime, value: float) -> float:
    """The loss averaged over data-parallel ranks (every rank then agrees on NaN and on what is logged)."""
    if not rt.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=rt.device)
    torch.distributed.all_reduce(t)
    return float(t.item()) / rt.world_size


def _check_val_split(data, cfg: TrainConfig) -> None:
    """Every run validates at its end: a validation split too small for one batch is refused before step 1."""
    batch = cfg.eval_batch_size or cfg.batch_size
    tokens = data.split_tokens("val")
    if (tokens - 1) // cfg.seq_len >= batch:
        return
    if float(cfg.data.val_fraction) == 0:
        raise TrainConfigError("data.val_fraction is 0, so there is no validation split, and every run validates "
                               "at its end: set data.val_fraction above 0 (e.g. 0.05)")
    manifest = data.manifest
    documents = manifest["splits"]["val"]["documents"]
    # Whole documents are held out and train always keeps one (data.sources.assign_splits): with a single train
    # document left, a larger val_fraction moves nothing, so the advice is more documents.
    several = ("use a corpus of several documents (files in a folder, or a JSONL file with one per line: a long "
               "text can be split into several)")
    if manifest["splits"]["train"]["documents"] <= 1 and documents == 0:
        cut = (f"data.max_bytes (now {cfg.data.max_bytes}) cut it there: raise it, or "
               if manifest.get("truncated_by_max_bytes") else "")
        raise TrainConfigError(
            f"the corpus is 1 document and training keeps it, so there is no validation split; "
            f"data.val_fraction cannot change that: {cut}{several}")
    if manifest["splits"]["train"]["documents"] <= 1:
        fix = f"train keeps its only document, so a larger data.val_fraction cannot help: {several}"
    else:
        fix = f"raise data.val_fraction (now {cfg.data.val_fraction}), use a larger corpus"
    raise TrainConfigError(
        f"the validation split ({documents} documents, {tokens} tokens) is too small for one validation batch of "
        f"{'eval_batch_size' if cfg.eval_batch_size else 'batch_size'} x seq_len + 1 = {batch} x {cfg.seq_len} + 1 "
        f"= {batch * cfg.seq_len + 1} tokens: {fix}, or set a smaller eval_batch_size")


def _check_compiler(rt: Runtime) -> None:
    compilers = (os.environ.get("CXX", "g++"), "c++", "clang++")
    if rt.device.type == "cpu" and not any(shutil.which(c) for c in compilers):
        raise TrainConfigError("compile: true needs a C++ compiler on CPU (torch.compile builds kernels with "
                               "one) and none was found; install g++ or set compile: false")


def train(cfg: TrainConfig, resume: bool | str = False, log=print) -> dict:
    """Run (or continue) one pretraining run; returns a summary dict. resume: False, True, or "auto".

    A run that fails before its first checkpoint in a folder it created (or found empty) takes what it wrote
    with it, so the same command can simply be run again; a folder that held anything before is left as it is,
    and so is one the user interrupted (Ctrl-C keeps its metrics)."""
    out = Path(cfg.out)
    existed = out.exists()
    fresh = not existed or (out.is_dir() and not any(out.iterdir()))
    rt = setup_runtime(cfg.device, cfg.dtype, cfg.parallel)
    try:
        return _train(cfg, rt, resume, log if rt.is_main else (lambda *a, **k: None))
    except Exception:
        if fresh and rt.is_main:
            if remove_unstarted_run(out, created=not existed):
                log(f"removed what this run wrote in {out} (it stopped before its first checkpoint): the same "
                    f"command can be run again")
        raise
    finally:
        teardown_runtime(rt)


def _recorded_eval(metrics: Path, step: int) -> dict:
    """The validation measures recorded at `step` (written before that step's checkpoint), or {}."""
    records = [r for r in read_jsonl(metrics) if r.get("step") == step and "val_loss" in r] if metrics.exists() else []
    return {k: v for k, v in records[-1].items() if k.startswith("val_")} if records else {}


def _train(cfg: TrainConfig, rt: Runtime, resume, log) -> dict:
    from augury.train.config import check_config

    if cfg.vision is not None or cfg.images is not None:
        from augury.train.image_text import train_image_text

        if cfg.parallel != "ddp":
            raise TrainConfigError("parallel: fsdp trains text runs only; train an image-text run with parallel: ddp")

        return train_image_text(cfg, rt, resume, log)
    check_config(cfg)
    out = Path(cfg.out)
    ckpt = checkpoint_to_resume(Path(cfg.out), resume, log)
    # Data first (rank 0 builds the cache, the others wait and read it): the model's vocab comes from it.
    if rt.is_main:
        data = prepare_data(cfg.data, log=log)
    rt.barrier()
    if not rt.is_main:
        data = prepare_data(cfg.data, log=lambda *a, **k: None)
    tokenizer = data.tokenizer()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, vocab_size=tokenizer.get_vocab_size()))
    cfg = resolve(cfg, rt.world_size)
    _check_val_split(data, cfg)
    identity = data_identity(data)
    saved = (check_resume_compatible(out, cfg, rt.dtype, identity, tokens_per_step(cfg, rt.world_size))
             if ckpt is not None else {})
    cfg = keep_validation_batches(cfg, saved)

    torch.manual_seed(cfg.seed)
    model = Transformer(cfg.model).to(rt.device)
    if cfg.model.output_bias:  # log unigram frequencies of the training split (a checkpoint, if any, overrides)
        train_ids = np.memmap(data.split_path("train"), dtype=data.dtype, mode="r")
        model.init_output_bias(np.bincount(train_ids, minlength=cfg.model.vocab_size)[:cfg.model.vocab_size])
    counts = param_counts(cfg.model)
    fpt = flops_per_token(cfg.model, cfg.seq_len)
    step_tokens = tokens_per_step(cfg, rt.world_size)
    fsdp = cfg.parallel == "fsdp"
    if fsdp:  # shard first: the optimizer is built over the sharded parameters
        from augury.train.fsdp import gradient_sync_off, shard_model

        if cfg.compile:
            _check_compiler(rt)
        shard_model(model, rt, compile_blocks=cfg.compile, param_dtype=cfg.fsdp_param_dtype)
    optimizer = make_optimizer(model, cfg.optim, rt.device.type)
    loader = TokenLoader(data.split_path("train"), cfg.batch_size, cfg.seq_len, seed=cfg.seed,
                         rank=rt.rank, world_size=rt.world_size)
    step = 0
    state: dict = {}
    if ckpt is not None:
        state = load_checkpoint(ckpt, model, optimizer)
        step = state["step"]
        loader.load_state_dict(state["loader"])
        log(f"resumed from {ckpt} at step {step}")
    trim_metrics(out / "metrics.jsonl", step)  # (all of them when `resume="auto"` starts afresh)

    manifest = {
        "status": "running", "created": utc_now(), "config": to_jsonable(cfg), "seed": cfg.seed,
        "git": git_hash(), "versions": package_versions(),
        "params": dataclasses.asdict(counts), "flops_per_token": fpt, "tokens_per_step": step_tokens,
        "total_steps": cfg.steps, "total_tokens": cfg.steps * step_tokens, "total_flops": cfg.steps * step_tokens * fpt,
        "device": str(rt.device), "dtype": rt.dtype, "world_size": rt.world_size, "parallel": cfg.parallel,
        "data": {k: data.manifest.get(k) for k in ("source", "sha256", "vocab_size", "splits", "tokens", "bytes")
                 if k in data.manifest},
        "identity": identity,
    }
    carry_over(manifest, saved, step)
    if rt.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if ckpt is None or not (out / "tokenizer.json").exists():  # a resumed run keeps its own (checked equal)
            shutil.copyfile(data.tokenizer_path, out / "tokenizer.json")
        atomic_write_text(out / "config.yaml", yaml.safe_dump(to_jsonable(cfg), sort_keys=False))
        atomic_write_json(out / "manifest.json", manifest)
        log(f"model: {counts.non_embedding:,} non-embedding params ({counts.total:,} total), "
            f"d_model={cfg.model.d_model}, depth={cfg.model.depth}, heads={cfg.model.n_heads}; "
            f"{cfg.steps} steps x {step_tokens:,} tokens, "
            f"{cfg.steps * step_tokens * fpt:.3g} FLOPs; lr {cfg.optim.lr:g}; {rt.device} {rt.dtype}")

    raw_model = model
    if cfg.compile and not fsdp:  # (under FSDP2 each block was compiled before sharding)
        _check_compiler(rt)
        model = torch.compile(model)
    if rt.distributed and not fsdp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[rt.local_rank] if rt.device.type == "cuda" else None)
    byte_lengths = torch.from_numpy(token_byte_lengths(tokenizer))
    peak = cfg.peak_flops or (hardware_peak_flops(rt) if rt.is_main else 1.0)
    # tokens/s counts every process's tokens and `peak` is one device's: MFU is against all the devices' peak
    run_peak = peak * rt.world_size
    val_path = data.split_path("val")

    def do_eval() -> dict:
        return evaluate(raw_model, rt, val_path, cfg.eval_batch_size or cfg.batch_size, cfg.seq_len,
                        cfg.eval_batches, byte_lengths, sharded=fsdp)

    def checkpoint(at_step: int) -> None:
        now = time.perf_counter()
        # The unlogged part of the log window and the clock go with it: a resumed run logs what a straight one does.
        trainer_state = {"step": at_step, "tokens": at_step * step_tokens, "loader": loader.state_dict(),
                         "window": {"loss": window_loss, "steps": window_steps, "seconds": now - window_start},
                         "elapsed_s": now - t_start}
        if fsdp:  # every process writes its shards
            save_sharded_checkpoint(out, at_step, raw_model, optimizer, trainer_state, keep_last=cfg.keep_last)
        elif rt.is_main:
            save_checkpoint(out, at_step, raw_model, optimizer, trainer_state, keep_last=cfg.keep_last)
        rt.barrier()

    end_step = cfg.steps if cfg.stop_after is None else min(cfg.steps, step + cfg.stop_after)
    bar = None
    if cfg.progress and rt.is_main:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc=out.name, unit="step", dynamic_ncols=True, leave=False)
    model.train()
    window = state.get("window", {})
    window_loss, window_steps = window.get("loss", 0.0), window.get("steps", 0)
    window_start = time.perf_counter() - window.get("seconds", 0.0)
    last_val: dict = {}
    t_start = time.perf_counter() - state.get("elapsed_s", 0.0)  # elapsed_s counts every invocation's training
    while step < end_step:
        mult = lr_multiplier(step, cfg.steps, cfg.optim)
        for g in optimizer.param_groups:
            g["lr"] = cfg.optim.lr * mult * g["lr_mult"]
        batches = (tuple(t.to(rt.device, non_blocking=True) for t in loader.next_batch())
                   for _ in range(cfg.grad_accum))
        step_loss = _global_mean(rt, train_step(
            model, optimizer, batches, autocast=rt.autocast, grad_clip=cfg.optim.grad_clip, n_micro=cfg.grad_accum,
            no_sync=(lambda: gradient_sync_off(raw_model)) if fsdp else model.no_sync if rt.distributed else None,
            clip_params=raw_model.parameters()))
        if not math.isfinite(step_loss):
            good = find_latest_checkpoint(out)
            raise TrainingDiverged(
                f"loss became {step_loss} at step {step + 1}; stopped without saving. "
                + (f"The last good checkpoint stays at {good}" if good else "No checkpoint had been written yet")
                + "; lower optim.lr or check the data.")
        step += 1
        window_loss += step_loss
        window_steps += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.3f}", refresh=False)
        is_last = step == cfg.steps
        val = {}
        if (rt.is_main or fsdp) and (is_last or (cfg.eval_every and step % cfg.eval_every == 0)):
            val = last_val = do_eval()
        if step % cfg.log_every == 0 or is_last or val:
            dt = time.perf_counter() - window_start
            tps = window_steps * step_tokens / max(dt, 1e-9)
            record = {"step": step, "tokens": step * step_tokens, "flops": step * step_tokens * fpt,
                      "train_loss": window_loss / window_steps, "lr": cfg.optim.lr * mult,
                      "tokens_per_s": tps, "mfu": tps * fpt / run_peak, "elapsed_s": time.perf_counter() - t_start,
                      "epoch": loader.epoch, **val}
            if rt.is_main:
                append_jsonl(out / "metrics.jsonl", record)
            window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
        if is_last or step == end_step or (cfg.ckpt_every and step % cfg.ckpt_every == 0):
            checkpoint(step)
    if bar is not None:
        bar.close()
    done = step >= cfg.steps
    if done and not last_val:  # resumed from the final checkpoint (killed before the manifest said complete)
        last_val = _recorded_eval(out / "metrics.jsonl", step)
        if not last_val and (rt.is_main or fsdp):
            last_val = do_eval()
    summary = {"status": "complete" if done else "stopped", "step": step, "tokens": step * step_tokens,
               "flops": step * step_tokens * fpt, "final_val_loss": last_val.get("val_loss"),
               "final_val_bpb": last_val.get("val_bpb"), "train_seconds": time.perf_counter() - t_start,
               "epochs": loader.epoch}
    if rt.is_main:
        manifest.update(status=summary["status"], finished=utc_now(), summary=summary, peak_flops=peak)
        atomic_write_json(out / "manifest.json", manifest)
        if done and last_val:
            log(f"done: step {step}, val loss {summary['final_val_loss']:.4f} nats/token, "
                f"{summary['final_val_bpb']:.4f} bits/byte -> {out}")
        elif done:  # resumed from its final checkpoint: nothing was left to train
            log(f"done: {out} had already trained all {cfg.steps} steps")
        else:
            log(f"stopped at step {step}/{cfg.steps}; continue with: augury train --config {out}/config.yaml --resume")
    return summary
