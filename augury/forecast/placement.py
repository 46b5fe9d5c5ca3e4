"""Placing ladder runs on GPUs by size: how much of a GPU each run asks for, and which GPU it trains on.

    share = gpu_share(training_memory_bytes(train_cfg), gpu_memory_bytes=80 * 2**30, rungs_per_gpu=4)
    slots = GpuSlots(2)                 # two GPUs, each with room 1.0
    gpu = slots.place(share)            # best fit: the fullest GPU the run still fits on (None: wait)
    slots.release(gpu, share)

A small rung uses a fraction of a large GPU, so several train side by side on one GPU: each run asks for a
power-of-two fraction (1, 1/2, 1/4, ...) that holds its estimated training memory, but never less than
1 / rungs_per_gpu (which caps how many share one GPU's compute). The Ray executor requests that fraction as
`num_gpus` (Ray packs fractional tasks onto one GPU and sets CUDA_VISIBLE_DEVICES); the local executor places the
runs itself with GpuSlots, largest first, and starts each in a fresh process whose CUDA_VISIBLE_DEVICES names its
GPU.
"""

from __future__ import annotations

import os

# the CUDA context, cuBLAS workspace and allocator slack of one process, whatever the model
PROCESS_OVERHEAD_BYTES = 1 << 30
# of a GPU's memory, what runs may plan to use (fragmentation, the caching allocator's rounding)
USABLE_FRACTION = 0.9


def training_memory_bytes(train_cfg) -> int:
    """An estimate of one run's peak GPU memory: fp32 weights, gradients and the two AdamW moments (16 bytes per
    parameter), the activations kept for the backward pass, and the logits with their fp32 copy and gradient."""
    from augury.model import param_counts

    m = train_cfg.model.resolved()
    act_bytes = 2 if train_cfg.dtype in ("bf16", "auto") else 4
    tokens = train_cfg.batch_size * train_cfg.seq_len
    # per token and layer: the inputs of the norms, q/k/v, attention output, projections and the MLP's gate/up
    # halves and their product (flash attention keeps no T x T scores)
    per_token_layer = (10 * m.d_model + 3 * m.d_ff) * act_bytes
    logits = tokens * m.vocab_size * (act_bytes + 4 + 4)
    return (16 * param_counts(m).total + tokens * m.depth * per_token_layer + logits + PROCESS_OVERHEAD_BYTES)


def gpu_share(memory_bytes: int, gpu_memory_bytes: int, rungs_per_gpu: int) -> float:
    """The fraction of one GPU a run asks for: the smallest 1/k (k a power of two, k <= rungs_per_gpu) whose
    memory holds it; 1.0 for a run that needs a whole GPU or more (it gets one GPU to itself)."""
    if rungs_per_gpu < 1:
        raise ValueError(f"rungs_per_gpu must be >= 1, got {rungs_per_gpu}")
    k = 1
    while k * 2 <= rungs_per_gpu and memory_bytes * k * 2 <= gpu_memory_bytes * USABLE_FRACTION:
        k *= 2
    return 1.0 / k


class GpuSlots:
    """The free fraction of each GPU; `place` puts a run on the fullest GPU that still has room for it (best
    fit, so small runs fill a GPU before they spread and whole GPUs stay free for large ones)."""

    def __init__(self, n_gpus: int):
        if n_gpus < 1:
            raise ValueError(f"need at least one GPU, got {n_gpus}")
        self.free = [1.0] * n_gpus

    def place(self, share: float) -> int | None:
        fits = [g for g, free in enumerate(self.free) if free >= share - 1e-9]
        if not fits:
            return None
        gpu = min(fits, key=lambda g: (self.free[g], g))
        self.free[gpu] -= share
        return gpu

    def release(self, gpu: int, share: float) -> None:
        self.free[gpu] = min(1.0, self.free[gpu] + share)


def visible_gpu_ids(count: int) -> list[str]:
    """The ids to put in a child's CUDA_VISIBLE_DEVICES for this process's GPUs 0..count-1 (this process's own
    CUDA_VISIBLE_DEVICES, if set, already renumbered them)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else [str(i) for i in range(count)]
    return ids[:count]


def local_gpus(device: str) -> tuple[int, int]:
    """(GPU count, memory of the first in bytes) the local executor packs runs on: (0, 0) on a CPU run."""
    if device not in ("auto", "cuda"):
        return 0, 0
    import torch

    if not torch.cuda.is_available():
        return 0, 0
    return torch.cuda.device_count(), torch.cuda.get_device_properties(0).total_memory
