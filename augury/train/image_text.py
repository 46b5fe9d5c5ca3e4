"""Image-text training: an image encoder and a decoder trained on image questions, the loss on answer tokens.

`augury train` runs this when the config has a `vision` and an `images` section (configs/train/vision-cpu.yaml):

    augury train --config configs/train/vision-cpu.yaml --seed 1 --out runs/vision-cpu-s1

The data are made offline from `images` (augury.data.images); the decoder starts from scratch (with a BPE trained
on the questions and answers) or from a text run's weights and tokenizer (`init_from`). Each step draws
`batch_size` examples (a permutation per epoch, fixed by the seed), so a resumed run sees the same batches.
RUN/ holds what a text run holds (config.yaml, tokenizer.json, metrics.jsonl, manifest.json, checkpoints/ with
the decoder and `vision.*` tensors in one model.safetensors) plus image_eval.json: held-out accuracy per task
and template with the real image, a blank one and shuffled ones, next to chance.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from augury.data.images import ImageExample, make_examples, to_pixels
from augury.io import (
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    git_hash,
    package_versions,
    to_jsonable,
    utc_now,
)
from augury.model.counts import (
    flops_per_token,
    param_counts,
    vision_flops_per_image,
    vision_label_flops,
    vision_param_counts,
)
from augury.model.image_prompt import PAD, answer, chat_ids, collate
from augury.model.transformer import Transformer
from augury.model.vision import ImageTextModel
from augury.train.checkpoint import (
    checkpoint_to_resume,
    find_latest_checkpoint,
    load_checkpoint,
    load_checkpoint_weights,
    save_checkpoint,
)
from augury.train.config import TrainConfig, TrainConfigError, check_cadence, default_lr
from augury.train.resume import carry_over, check_resume_compatible, trim_metrics
from augury.train.runtime import Runtime
from augury.train.schedule import lr_multiplier
from augury.train.step import make_optimizer


def check_image_text_config(cfg: TrainConfig) -> None:
    """Errors an image-text config can have, raised before any data or model is built."""
    if (cfg.vision is None) != (cfg.images is None):
        raise TrainConfigError("an image-text run needs both a `vision` and an `images` section (docs/vision.md)")
    try:
        cfg.model.resolved()
        cfg.vision.validate()
        cfg.images.validate()
    except ValueError as err:
        raise TrainConfigError(str(err)) from None
    cfg.optim.validate()
    check_cadence(cfg)
    if cfg.dtype not in ("auto", "bf16", "fp32") or cfg.device not in ("auto", "cpu", "cuda"):
        raise TrainConfigError("dtype must be auto, bf16 or fp32 and device auto, cpu or cuda")
    if cfg.steps is None:
        raise TrainConfigError("an image-text run sets its length with `steps`")
    if cfg.batch_size is None or cfg.batch_size < 2:
        raise TrainConfigError("an image-text run needs batch_size >= 2")
    total = sum(cfg.images.examples_for(t) for t in cfg.images.tasks)
    if total < cfg.batch_size:
        raise TrainConfigError(f"the image tasks make {total} training examples in all, fewer than one batch "
                               f"(batch_size={cfg.batch_size}); raise images.train_examples")
    if cfg.grad_accum != 1:
        raise TrainConfigError("an image-text run takes grad_accum: 1")
    if cfg.init_from is not None and not (Path(cfg.init_from) / "config.yaml").is_file():
        raise TrainConfigError(f"init_from: {cfg.init_from} is not an augury run folder (no config.yaml)")


def _tokenizer(cfg: TrainConfig, train: list[ImageExample]):
    from tokenizers import Tokenizer

    from augury.data.tokenizer import train_tokenizer

    if cfg.init_from is not None:
        return Tokenizer.from_file(str(Path(cfg.init_from) / "tokenizer.json"))
    texts = [f"{e.question} {e.answer}" for e in train] * 2  # twice: BPE keeps pairs seen at least twice
    return train_tokenizer(texts, cfg.images.vocab_size)


def _decoder_config(cfg: TrainConfig, tokenizer):
    if cfg.init_from is None:
        return dataclasses.replace(cfg.model, vocab_size=tokenizer.get_vocab_size()).resolved()
    from augury.model.run import run_model_config

    return run_model_config(cfg.init_from)


def train_image_text(cfg: TrainConfig, rt: Runtime, resume, log) -> dict:
    """Run (or resume) one image-text run; returns a summary dict."""
    check_image_text_config(cfg)
    if rt.distributed:
        raise TrainConfigError("image-text runs train in one process (no torchrun yet)")
    out = Path(cfg.out)
    ckpt = checkpoint_to_resume(out, resume, log, kind="image-text")
    vcfg, icfg = cfg.vision, cfg.images
    t0 = time.perf_counter()
    train_set = [e for t in icfg.tasks
                 for e in make_examples(t, "train", icfg.examples_for(t), icfg.seed, vcfg.image_size,
                                        icfg.split_seed)]
    heldout = [e for t in icfg.tasks
               for e in make_examples(t, "heldout", icfg.heldout_examples, icfg.seed, vcfg.image_size,
                                      icfg.split_seed)]
    tokenizer = _tokenizer(cfg, train_set)
    mcfg = _decoder_config(cfg, tokenizer)
    per = vcfg.tokens_per_image
    rows = [chat_ids(tokenizer, e.question, 1, per, e.answer) for e in train_set]
    longest = max(len(r[0]) for r in rows)
    if longest > mcfg.max_seq_len:
        raise TrainConfigError(f"an example is {longest} tokens ({per} per image), more than "
                               f"model.max_seq_len={mcfg.max_seq_len}")
    pixels = torch.from_numpy(np.stack([to_pixels(e.image) for e in train_set]))
    label_ids = None
    if icfg.label_loss > 0:  # the auxiliary label head: one class per (task, label) seen in training
        names = sorted({f"{e.task}:{e.label}" for e in train_set})
        index = {name: i for i, name in enumerate(names)}
        label_ids = torch.tensor([index[f"{e.task}:{e.label}"] for e in train_set])
        vcfg = dataclasses.replace(vcfg, label_classes=len(names))
    log(f"image data: {len(train_set)} train / {len(heldout)} held-out examples of {', '.join(icfg.tasks)} "
        f"in {time.perf_counter() - t0:.1f}s; {per} tokens per image, longest example {longest} tokens")
    cfg = dataclasses.replace(cfg, model=mcfg, vision=vcfg, seq_len=longest - 1,
                              optim=dataclasses.replace(cfg.optim, lr=cfg.optim.lr or default_lr(mcfg)))
    identity = {"tokenizer_sha256": hashlib.sha256(tokenizer.to_str().encode("utf-8")).hexdigest()}
    saved = check_resume_compatible(out, cfg, rt.dtype, identity) if ckpt is not None else {}

    torch.manual_seed(cfg.seed)
    model = ImageTextModel(mcfg, vcfg).to(rt.device)
    if cfg.init_from is not None and ckpt is None:
        text_ckpt = find_latest_checkpoint(cfg.init_from)
        if text_ckpt is None:
            raise TrainConfigError(f"init_from: {cfg.init_from} has no intact checkpoint")
        decoder = Transformer(mcfg)
        load_checkpoint_weights(decoder, text_ckpt)  # model.safetensors, or dcp/ of an FSDP2 run
        model.load_state_dict(decoder.state_dict(), strict=False)
        log(f"decoder from {text_ckpt}")
    optimizer = make_optimizer(model, cfg.optim, rt.device.type)
    step = 0
    state: dict = {}
    if ckpt is not None:
        state = load_checkpoint(ckpt, model, optimizer)
        step = state["step"]
        log(f"resumed from {ckpt} at step {step}")
    trim_metrics(out / "metrics.jsonl", step)
    counts, vcounts = param_counts(mcfg), vision_param_counts(vcfg, mcfg.d_model)
    pad_id = tokenizer.token_to_id(PAD)
    out.mkdir(parents=True, exist_ok=True)
    if ckpt is None or not (out / "tokenizer.json").exists():  # a resumed run keeps its own (checked equal)
        tokenizer.save(str(out / "tokenizer.json"))
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_jsonable(cfg), sort_keys=False))
    manifest = {"status": "running", "created": utc_now(), "config": to_jsonable(cfg), "seed": cfg.seed,
                "git": git_hash(), "versions": package_versions(), "kind": "image-text",
                "params": {**dataclasses.asdict(counts), "vision_total": vcounts.total, "vision_matmul": vcounts.matmul,
                           "total_with_vision": counts.total + vcounts.total},
                "tokens_per_image": per, "vision_flops_per_image": vision_flops_per_image(vcfg, mcfg.d_model),
                "total_steps": cfg.steps, "device": str(rt.device), "dtype": rt.dtype,
                # CPU results depend on the thread count (it changes the order of float sums), so it is recorded
                "torch_threads": torch.get_num_threads(),
                "examples": {"train": len(train_set), "heldout": len(heldout)}, "identity": identity}
    carry_over(manifest, saved, step)
    atomic_write_json(out / "manifest.json", manifest)
    log(f"model: decoder {counts.total:,} params + vision {vcounts.total:,}; {cfg.steps} steps x "
        f"{cfg.batch_size} examples; lr {cfg.optim.lr:g}; {rt.device} {rt.dtype}")

    sizes = [icfg.examples_for(t) for t in icfg.tasks]
    weights = [icfg.task_weights[t] for t in icfg.tasks] if icfg.task_weights else None

    def batch_indices(at_step: int) -> np.ndarray:
        per_epoch = len(train_set) // cfg.batch_size
        epoch, k = divmod(at_step, per_epoch)
        order = epoch_order(sizes, weights, cfg.seed, epoch)
        return order[k * cfg.batch_size:(k + 1) * cfg.batch_size]

    fpi = manifest["vision_flops_per_image"]
    # The checkpoint carries the run's FLOPs, clock and unlogged log window: a resume logs what a straight run does.
    flops = state.get("flops", 0)
    t_start = time.perf_counter() - state.get("elapsed_s", 0.0)
    saved_window = state.get("window", {})
    window, window_n = saved_window.get("loss", 0.0), saved_window.get("steps", 0)
    label_window = saved_window.get("label_loss", 0.0)
    end_step = cfg.steps if cfg.stop_after is None else min(cfg.steps, step + cfg.stop_after)
    model.train()
    while step < end_step:
        mult = lr_multiplier(step, cfg.steps, cfg.optim)
        for g in optimizer.param_groups:
            g["lr"] = cfg.optim.lr * mult * g["lr_mult"]
        idx = batch_indices(step)
        x, y = collate([rows[i] for i in idx], pad_id, train=True)
        with rt.autocast():
            if label_ids is None:
                loss = answer_loss = model(x.to(rt.device), targets=y.to(rt.device),
                                           images=pixels[idx].to(rt.device))
            else:
                answer_loss, label_loss = model.losses(x.to(rt.device), y.to(rt.device), pixels[idx].to(rt.device),
                                                       label_ids[idx].to(rt.device))
                loss = answer_loss + icfg.label_loss * label_loss
                label_window += float(label_loss.detach())
        loss.backward()
        value = float(answer_loss.detach())
        if not math.isfinite(value):
            raise TrainConfigError(f"loss became {value} at step {step + 1}; lower optim.lr")
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        flops += flops_per_token(mcfg, x.shape[1]) * x.numel() + fpi * len(idx)
        if label_ids is not None:
            flops += vision_label_flops(vcfg) * len(idx)
        window, window_n = window + value, window_n + 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            record = {"step": step, "train_loss": window / window_n, "lr": cfg.optim.lr * mult,
                      "examples": step * cfg.batch_size, "flops_since_start": flops,
                      "elapsed_s": time.perf_counter() - t_start}
            labels = ""
            if label_ids is not None:  # train_loss stays the answers' loss, comparable with runs without it
                record["label_loss"] = label_window / window_n
                labels = f" label loss {record['label_loss']:.4f}"
            append_jsonl(out / "metrics.jsonl", record)
            log(f"step {step}/{cfg.steps} loss {window / window_n:.4f}{labels} "
                f"({time.perf_counter() - t_start:.0f}s)")
            window, window_n, label_window = 0.0, 0, 0.0
        if step == end_step or (cfg.ckpt_every and step % cfg.ckpt_every == 0):
            save_checkpoint(out, step, model, optimizer,
                            {"step": step, "flops": flops, "elapsed_s": time.perf_counter() - t_start,
                             "window": {"loss": window, "steps": window_n, "label_loss": label_window}},
                            keep_last=cfg.keep_last)
    train_seconds = time.perf_counter() - t_start
    if step < cfg.steps:
        summary = {"status": "stopped", "step": step, "train_seconds": train_seconds}
        manifest.update(status="stopped", finished=utc_now(), summary=summary)
        atomic_write_json(out / "manifest.json", manifest)
        log(f"stopped at step {step}/{cfg.steps}; continue with: augury train --config {out}/config.yaml --resume")
        return summary
    report = evaluate_heldout(model, tokenizer, heldout, rt.device)
    atomic_write_json(out / "image_eval.json", report)
    from augury.evals.images import summary_lines

    for line in summary_lines(report):
        log(line)
    summary = {"status": "complete", "step": step, "train_seconds": train_seconds, "image_eval": report}
    manifest.update(status="complete", finished=utc_now(), summary=summary)
    atomic_write_json(out / "manifest.json", manifest)
    log(f"done: step {step} -> {out}")
    return summary


def epoch_order(sizes: list[int], weights: list[float] | None, seed: int, epoch: int) -> np.ndarray:
    """One epoch's order of training examples: indices into the task pools laid end to end (sizes[t] each),
    sum(sizes) of them, shuffled, fixed by (seed, epoch). With `weights`, task t fills its share of the epoch by
    cycling through its own shuffled pool (a small pool repeats, a large one is sampled without replacement)."""
    rng = np.random.default_rng([seed, epoch])
    total = sum(sizes)
    if not weights:
        return rng.permutation(total)
    counts = np.floor(np.asarray(weights, dtype=float) / sum(weights) * total).astype(int)
    counts[: total - int(counts.sum())] += 1  # the rounding remainder, one each to the first tasks
    starts = np.cumsum([0] + list(sizes[:-1]))
    parts = [start + np.resize(rng.permutation(size), count) for start, size, count in zip(starts, sizes, counts)]
    return rng.permutation(np.concatenate(parts))


def evaluate_heldout(model: ImageTextModel, tokenizer, examples: list[ImageExample], device) -> dict:
    """Held-out accuracy per task and template, with real, blank and shuffled images (greedy answers)."""
    from augury.evals.images import evaluate_image_tasks

    model.eval()

    def answer_fn(questions, images):
        pixels = torch.from_numpy(np.stack([to_pixels(im) for im in images]))
        return answer(model, tokenizer, questions, pixels.to(device), max_tokens=6)

    try:
        return evaluate_image_tasks(examples, answer_fn, batch_size=100)
    finally:
        model.train()
