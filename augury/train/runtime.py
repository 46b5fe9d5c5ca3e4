"""Where a run executes: device, autocast dtype, torchrun process group (DDP or FSDP2), peak FLOP/s for MFU.

Under `torchrun --nproc_per_node N -m augury train ...` (or `torchrun ... $(which augury) train`), RANK/WORLD_SIZE
are set; the process group uses NCCL on CUDA and gloo on CPU. FSDP2 in a single process gets a one-process group.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

# Data-sheet dense bf16 tensor-core peaks (FLOP/s, without sparsity) by the name torch.cuda.get_device_name gives,
# most specific pattern first (an H100 PCIe or NVL is not an H100 SXM). A GPU not listed gets a measured matmul
# peak; TrainConfig.peak_flops overrides both.
GPU_BF16_PEAKS: tuple[tuple[str, str, float], ...] = (
    # (regular expression on the device name, what it is, dense bf16 FLOP/s)
    (r"H100.*PCIe", "H100 PCIe", 756.0e12),
    (r"H100.*NVL", "H100 NVL", 835.5e12),
    (r"H100", "H100 SXM", 989.4e12),
    (r"H800.*PCIe", "H800 PCIe", 756.0e12),
    (r"H800", "H800 SXM", 989.4e12),
    (r"H200.*NVL", "H200 NVL", 835.5e12),
    (r"GH200", "GH200", 989.4e12),
    (r"H200", "H200 SXM", 989.4e12),
    (r"B200", "B200", 2250e12),
    (r"A100", "A100 (SXM or PCIe)", 312e12),
    (r"A800", "A800", 312e12),
    (r"L40S", "L40S", 362.05e12),
    (r"\bL4\b", "L4", 121e12),
    (r"\bA10\b", "A10", 125e12),
    (r"RTX 4090", "GeForce RTX 4090", 165.2e12),
)


def gpu_bf16_peak(device_name: str) -> tuple[str, float] | None:
    """(which GPU, dense bf16 FLOP/s) for a `torch.cuda.get_device_name` string, or None if it is not listed."""
    for pattern, label, peak in GPU_BF16_PEAKS:
        if re.search(pattern, device_name):
            return label, peak
    return None


@dataclass
class Runtime:
    device: torch.device
    dtype: str            # "bf16" or "fp32": the autocast dtype
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # a one-process group started here for FSDP2 (torchrun starts none with 1 process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        if self.dtype == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def setup_runtime(device: str = "auto", dtype: str = "auto", parallel: str = "ddp") -> Runtime:
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device=cuda but no CUDA device is available")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        dev = torch.device("cpu")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    owns = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend=backend)
    elif parallel == "fsdp" and not dist.is_initialized():  # fully_shard needs a process group, even of one
        dist.init_process_group(backend=backend, store=dist.HashStore(), rank=0, world_size=1)
        owns = True
    if dtype == "auto":
        dtype = "bf16" if bf16_supported(dev) else "fp32"
    elif dtype == "bf16" and not bf16_supported(dev):
        raise RuntimeError(f"dtype=bf16 requested but {dev} does not support bf16")
    return Runtime(device=dev, dtype=dtype, rank=rank, world_size=world, local_rank=local, owns_group=owns)


def teardown_runtime(rt: Runtime) -> None:
    if (rt.distributed or rt.owns_group) and dist.is_initialized():
        dist.destroy_process_group()


def measure_matmul_peak(device: torch.device, dtype: str, size: int = 1024, seconds: float = 0.3) -> float:
    """Achieved FLOP/s of a large square matmul: the practical peak MFU is quoted against on a CPU."""
    tdtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(size, size, device=device, dtype=tdtype)
    b = torch.randn(size, size, device=device, dtype=tdtype)
    for _ in range(2):
        a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * n / (time.perf_counter() - start)


def hardware_peak_flops(rt: Runtime) -> float:
    return _peak_flops(rt.device, rt.dtype)


@functools.cache
def _peak_flops(device: torch.device, dtype: str) -> float:
    """Once per process and (device, dtype): a ladder trains many runs in one process and shares one peak.
    fp32 on a listed GPU runs its matmuls in TF32 (enabled in setup_runtime), half the bf16 rate."""
    if device.type == "cuda":
        known = gpu_bf16_peak(torch.cuda.get_device_name(device))
        if known is not None:
            return known[1] if dtype == "bf16" else known[1] / 2
        return measure_matmul_peak(device, dtype, size=8192)
    return measure_matmul_peak(device, dtype)
