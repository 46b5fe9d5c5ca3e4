"""Where a run executes: device, autocast dtype, torchrun/DDP process group, hardware peak FLOP/s for MFU.

Under `torchrun --nproc_per_node N -m augury train ...` (or `torchrun ... $(which augury) train`), RANK/WORLD_SIZE
are set; the process group uses NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

# Dense bf16 peaks (FLOP/s) of common accelerators, for MFU; override with TrainConfig.peak_flops.
GPU_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12,
                 "4090": 165e12, "3090": 71e12, "V100": 125e12, "T4": 65e12}


@dataclass
class Runtime:
    device: torch.device
    dtype: str            # "bf16" or "fp32": the autocast dtype
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

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


def setup_runtime(device: str = "auto", dtype: str = "auto") -> Runtime:
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
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    if dtype == "auto":
        dtype = "bf16" if bf16_supported(dev) else "fp32"
    elif dtype == "bf16" and not bf16_supported(dev):
        raise RuntimeError(f"dtype=bf16 requested but {dev} does not support bf16")
    return Runtime(device=dev, dtype=dtype, rank=rank, world_size=world, local_rank=local)


def teardown_runtime(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
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
    """Once per process and (device, dtype): a ladder trains many runs in one process and shares one peak."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peak in GPU_BF16_PEAK.items():
            if key in name:
                return peak if dtype == "bf16" else peak / 2
        return measure_matmul_peak(device, dtype, size=8192)
    return measure_matmul_peak(device, dtype)
