"""Training configuration: typed dataclasses loadable from YAML with dotted command-line overrides.

    # a minimal config file (configs/train/ holds complete ones, e.g. quickstart.yaml)
    model: {depth: 2}
    data: {source: stdlib, vocab_size: 2048}
    tokens: 2000000

    augury train --config configs/train/quickstart.yaml --model.depth 3 --optim.schedule wsd

The size dial: `model.depth` fixes the width and head count (see ModelConfig); `optim.lr` and `batch_size` left
unset follow the rules in `default_lr` and `default_batch_size`, so a ladder of depths is one recipe scaled.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

from augury.data import DataConfig
from augury.data.images import ImageDataConfig
from augury.model import ModelConfig
from augury.model.vision import VisionConfig


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule.

    Args:
        lr: peak learning rate; None follows the size dial's rule (see default_lr).
        weight_decay: decoupled weight decay on weight matrices (not on embeddings or norm gains).
        beta1: Adam first-moment decay.
        beta2: Adam second-moment decay.
        eps: Adam epsilon.
        grad_clip: clip the global gradient norm to this value; 0 disables clipping.
        schedule: "cosine" (warmup, then cosine to min_lr_ratio), "wsd" (warmup-stable-decay: constant, then
            a linear decay over the last decay_frac of steps) or "constant" (after warmup).
        warmup_steps: linear warmup length in optimizer steps; None uses warmup_frac of the run.
        warmup_frac: warmup as a fraction of all steps, when warmup_steps is None.
        decay_frac: fraction of the run spent decaying under "wsd".
        min_lr_ratio: final learning rate as a fraction of the peak (cosine and wsd).
    """

    lr: float | None = None
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"
    warmup_steps: int | None = None
    warmup_frac: float = 0.05
    decay_frac: float = 0.2
    min_lr_ratio: float = 0.1

    def validate(self) -> None:
        """Raise TrainConfigError naming the first setting AdamW or the schedule cannot use."""
        ranges = {"lr": (lambda v: v > 0, "> 0"), "weight_decay": (lambda v: v >= 0, ">= 0"),
                  "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"), "beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
                  "eps": (lambda v: v > 0, "> 0"), "grad_clip": (lambda v: v >= 0, ">= 0 (0 disables clipping)"),
                  **{name: (lambda v: 0 <= v <= 1, "in [0, 1]") for name in ("warmup_frac", "decay_frac",
                                                                             "min_lr_ratio")}}
        for name, (ok, span) in ranges.items():
            value = getattr(self, name)
            if name == "lr" and value is None:  # the size dial's rule picks it
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or not ok(value):
                raise TrainConfigError(f"optim.{name} must be a finite number {span}, got {value!r}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise TrainConfigError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.schedule not in ("cosine", "wsd", "constant"):
            raise TrainConfigError(f"optim.schedule must be cosine, wsd or constant, got {self.schedule!r}")


@dataclass
class TrainConfig:
    """One pretraining run.

    Args:
        out: run folder (metrics.jsonl, manifest.json, checkpoints/, tokenizer.json).
        model: model shape (the size dial is model.depth).
        data: corpus and tokenizer.
        optim: optimizer and schedule.
        seq_len: tokens per training sequence.
        batch_size: sequences per micro-batch per process; None follows default_batch_size.
        grad_accum: micro-batches per optimizer step.
        steps: optimizer steps. The run length is the first of steps / tokens / tokens_per_param that is set,
            so `--steps 50` on the command line overrides a config's `tokens`.
        tokens: training tokens (rounded up to whole steps).
        tokens_per_param: training tokens per non-embedding parameter (Chinchilla-style: 20).
        seed: seed for initialisation and data order.
        dtype: "auto" (bf16 autocast where the hardware supports it, else fp32), "bf16" or "fp32".
        device: "auto" (CUDA if available, else CPU), "cpu" or "cuda".
        compile: wrap the model in torch.compile (worth it for long runs; costs tens of seconds per shape on CPU
            the first time, see BENCHMARKS.md).
        parallel: how the processes of a torchrun launch share the work: "ddp" (each holds the whole model and
            optimizer; gradients all-reduced) or "fsdp" (FSDP2: parameters, gradients and optimizer state sharded
            over the processes, for a model that does not fit one device; sharded checkpoints in dcp/ that resume on
            any number of processes). "fsdp" also runs in a single process.
        fsdp_param_dtype: the dtype FSDP2 gathers parameters in for a bf16 run on a GPU: "fp32" computes as ddp
            does (bf16 autocast over fp32 weights; the residual stream stays fp32); "bf16" halves the all-gather
            traffic and activation memory but carries the residual stream in bf16, which changes the losses.
        log_every: write a metrics record every this many steps.
        eval_every: validate every this many steps (and always at the end); 0 validates only at the end.
        eval_batches: validation batches per evaluation (>= 1; None: the whole validation split).
        eval_batch_size: sequences per validation batch; None uses batch_size. Fix it to compare runs of different
            batch sizes on exactly the same validation tokens.
        ckpt_every: checkpoint every this many steps (and always at the end); 0 checkpoints only at the end.
        keep_last: checkpoints to keep (the newest).
        stop_after: stop after this many steps (>= 1) in this invocation, with a checkpoint (resume later); None
            trains to the end.
        peak_flops: one device's peak FLOP/s, for MFU (against processes x this peak); None measures CPU matmul
            peak or looks up the GPU.
        progress: show a progress bar with ETA.
        vision: an image encoder (docs/vision.md); set together with `images` for an image-text run, which
            trains on image questions (loss on the answer tokens) instead of the text corpus.
        images: the image-question data of an image-text run.
        init_from: a trained text run whose decoder weights and tokenizer start an image-text run (None:
            the decoder starts from scratch with a tokenizer trained on the questions and answers). A text run
            refuses it.
    """

    out: str = "runs/run"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seq_len: int = 256
    batch_size: int | None = None
    grad_accum: int = 1
    steps: int | None = None
    tokens: int | None = None
    tokens_per_param: float | None = None
    seed: int = 0
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False
    parallel: Literal["ddp", "fsdp"] = "ddp"
    fsdp_param_dtype: Literal["fp32", "bf16"] = "fp32"
    log_every: int = 10
    eval_every: int = 0
    eval_batches: int | None = 20
    eval_batch_size: int | None = None
    ckpt_every: int = 0
    keep_last: int = 2
    stop_after: int | None = None
    peak_flops: float | None = None
    progress: bool = True
    vision: VisionConfig | None = None
    images: ImageDataConfig | None = None
    init_from: str | None = None


class TrainConfigError(ValueError):
    """A configuration that cannot run (reported before any work starts)."""


def default_lr(model: ModelConfig) -> float:
    """The size dial's learning-rate rule.

    µP: one learning rate at every width (0.01 at the base width; µP's per-layer multipliers do the scaling).
    SP: 0.01 · (256 / d_model), i.e. ∝ 1/width, the rule that keeps Adam's update size per unit width fixed
    for hidden matrices under standard parametrization. Both are starting points a user should tune at small scale.
    """
    m = model.resolved()
    if m.parametrization == "mup":
        return 1e-2
    return 1e-2 * min(4.0, 256 / m.d_model)


def default_batch_size(model: ModelConfig, seq_len: int) -> int:
    """Sequences per step: 4,096 tokens up to depth 4, then doubling with each doubling of depth (cap 64k)."""
    m = model.resolved()
    tokens = 4096 * 2 ** max(0, math.ceil(math.log2(m.depth / 4)))
    return max(1, min(65536, tokens) // seq_len)


def check_config(cfg: TrainConfig) -> None:
    """Raise TrainConfigError for settings that cannot work, before any data or model is built."""
    cfg.model.resolved()  # raises ModelConfigError (a ValueError) on a bad shape
    if cfg.steps is None and cfg.tokens is None and cfg.tokens_per_param is None:
        raise TrainConfigError("set the run length: steps, tokens or tokens_per_param")
    # only the option that sets the run length is checked (steps wins over tokens, tokens over tokens_per_param);
    # a length of 0 or less would otherwise round up to a one-step run without a word
    if cfg.steps is None and cfg.tokens is not None and cfg.tokens < 1:
        raise TrainConfigError(f"tokens must be >= 1 (the run length in training tokens), got {cfg.tokens}")
    if cfg.steps is None and cfg.tokens is None and not (math.isfinite(cfg.tokens_per_param)
                                                         and cfg.tokens_per_param > 0):
        raise TrainConfigError(f"tokens_per_param must be a finite number > 0, got {cfg.tokens_per_param}")
    if cfg.seq_len < 2 or cfg.seq_len > cfg.model.max_seq_len:
        raise TrainConfigError(f"seq_len={cfg.seq_len} must be in [2, model.max_seq_len={cfg.model.max_seq_len}]")
    cfg.optim.validate()
    if cfg.init_from is not None:
        raise TrainConfigError("init_from starts an image-text run (with `vision` and `images` sections) from a "
                               "text run; a text run trains from scratch: leave init_from unset")
    if cfg.dtype not in ("auto", "bf16", "fp32"):
        raise TrainConfigError(f"dtype must be auto, bf16 or fp32, got {cfg.dtype!r}")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise TrainConfigError(f"device must be auto, cpu or cuda, got {cfg.device!r}")
    if cfg.parallel not in ("ddp", "fsdp"):
        raise TrainConfigError(f"parallel must be ddp or fsdp, got {cfg.parallel!r}")
    if cfg.fsdp_param_dtype == "bf16" and (cfg.parallel != "fsdp" or cfg.dtype == "fp32" or cfg.device == "cpu"):
        raise TrainConfigError("fsdp_param_dtype: bf16 applies to parallel: fsdp bf16 runs on a GPU only; "
                               "leave it at fp32 here")
    if cfg.parallel == "fsdp" and (cfg.vision is not None or cfg.images is not None):
        raise TrainConfigError("parallel: fsdp trains text runs only; train an image-text run with parallel: ddp")
    if cfg.grad_accum < 1:
        raise TrainConfigError("grad_accum must be >= 1")
    check_cadence(cfg)
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise TrainConfigError("batch_size must be >= 1")
    if cfg.eval_batch_size is not None and cfg.eval_batch_size < 1:
        raise TrainConfigError("eval_batch_size must be >= 1")
    if cfg.eval_batches is not None and cfg.eval_batches < 1:
        raise TrainConfigError(f"eval_batches must be >= 1 (or unset for the whole validation split), got "
                               f"{cfg.eval_batches}")


def check_cadence(cfg: TrainConfig) -> None:
    """How often a run logs, validates and checkpoints, and where it stops: counts of steps, 0 meaning "only at the
    end" where the option says so (text and image-text runs)."""
    for name in ("log_every", "keep_last"):
        if getattr(cfg, name) < 1:
            raise TrainConfigError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    for name in ("eval_every", "ckpt_every"):
        if getattr(cfg, name) < 0:
            raise TrainConfigError(f"{name} must be >= 0 (0: only at the end), got {getattr(cfg, name)}")
    if cfg.steps is not None and cfg.steps < 1:  # a length to check now, not after the data is prepared
        raise TrainConfigError(f"steps must be >= 1 (the run length in optimizer steps), got {cfg.steps}")
    if cfg.stop_after is not None and cfg.stop_after < 1:
        raise TrainConfigError(f"stop_after must be >= 1 (steps to train in this invocation; unset: train to the "
                               f"end), got {cfg.stop_after}")


def resolve(cfg: TrainConfig, world_size: int = 1) -> TrainConfig:
    """A copy with the dial's defaults filled in (batch size, lr) and the run length turned into steps."""
    from augury.model import param_counts

    check_config(cfg)
    c = dataclasses.replace(cfg, model=cfg.model.resolved(), optim=dataclasses.replace(cfg.optim))
    if c.batch_size is None:
        c.batch_size = default_batch_size(c.model, c.seq_len)
    if c.optim.lr is None:
        c.optim.lr = default_lr(c.model)
    tokens_per_step = c.batch_size * c.seq_len * c.grad_accum * world_size
    if c.steps is None:
        tokens = c.tokens if c.tokens is not None else c.tokens_per_param * param_counts(c.model).non_embedding
        c.steps = max(1, math.ceil(tokens / tokens_per_step))
    if c.steps < 1:
        raise TrainConfigError("steps must be >= 1")
    c.tokens = c.tokens_per_param = None  # the run length is now `steps`; the saved config.yaml reloads as is
    return c


def tokens_per_step(cfg: TrainConfig, world_size: int = 1) -> int:
    return cfg.batch_size * cfg.seq_len * cfg.grad_accum * world_size
