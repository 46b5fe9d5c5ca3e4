"""FSDP2 (`torch.distributed.fsdp.fully_shard`) for `augury train --parallel fsdp`: sharding, gradient sync,
sharded evaluation and sharded checkpoints with `torch.distributed.checkpoint` (DCP).

    torchrun --standalone --nproc_per_node 2 -m augury train --config ... --parallel fsdp

Each transformer block is one FSDP unit; the root unit holds the embeddings, the final norm, the output
projection (so tied input/output embeddings are one parameter in one unit) and the output bias. Parameters,
gradients and optimizer state are sharded over all processes; the optimizer is built after sharding, over the
sharded parameters. A checkpoint's `dcp/` folder holds every process's shards plus DCP's metadata, keyed by
parameter name: it loads onto any number of processes (DCP reshards), and without any process group into a plain
model (`load_dcp_weights`, used by `augury export` and everything that loads a run).
"""

from __future__ import annotations

import contextlib
import math
import warnings

import torch
import torch.distributed as dist

from augury.train.config import TrainConfigError
from augury.train.runtime import Runtime


def shard_model(model: torch.nn.Module, rt: Runtime, compile_blocks: bool = False,
                param_dtype: str = "fp32") -> torch.nn.Module:
    """fully_shard each block, then the root (in place; returns the model). Parameters are gathered in fp32 and
    the forward runs under the run's autocast, as ddp's does; with `param_dtype="bf16"` on CUDA in a bf16 run they
    are gathered in bf16 and gradients reduced in fp32 (FSDP2's MixedPrecisionPolicy)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(rt.device.type, (dist.get_world_size(),))
    kwargs = {"mesh": mesh}
    if param_dtype == "bf16":
        if rt.device.type != "cuda" or rt.dtype != "bf16":  # "auto" device or dtype resolved to something else
            raise TrainConfigError(f"fsdp_param_dtype: bf16 needs a CUDA bf16 run; this one is {rt.device.type} "
                                   f"{rt.dtype}")
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for block in model.layers:
        if compile_blocks:
            block.compile()  # in place: parameter names (and so checkpoints) stay those of the plain model
        # the last block's parameters are needed again at once by the backward pass: keep them gathered
        fully_shard(block, reshard_after_forward=block is not model.layers[-1], **kwargs)
    fully_shard(model, **kwargs)
    return model


@contextlib.contextmanager
def gradient_sync_off(model):
    """FSDP2's own switch: accumulate unsharded gradients locally, reduce-scatter on the last micro-batch."""
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


@torch.no_grad()
def evaluate_sharded(model, rt: Runtime, batches: list, byte_lengths: torch.Tensor) -> tuple[float, int, int]:
    """(nats, tokens, bytes) summed over `batches`, which the processes split between them (batch i on process
    i mod world). Every process runs the same number of forward passes (FSDP's all-gathers are collective): one
    with fewer batches repeats its last and discards the result."""
    world, rank = dist.get_world_size(), dist.get_rank()
    mine = batches[rank::world]
    rounds = math.ceil(len(batches) / world)
    nats, tokens, nbytes = 0.0, 0, 0
    model.eval()
    for i in range(rounds):
        x, y = mine[min(i, len(mine) - 1)] if mine else batches[0]
        with rt.autocast():
            losses = model(x.to(rt.device), targets=y.to(rt.device), reduction="none")
        if i < len(mine):
            nats += float(losses.double().sum())
            tokens += y.numel()
            nbytes += int(byte_lengths[y].sum())
    model.train()
    total = torch.tensor([nats, tokens, nbytes], dtype=torch.float64, device=rt.device)
    dist.all_reduce(total)
    return float(total[0]), int(total[1]), int(total[2])


def sharded_state(model, optimizer) -> dict:
    """{"model": ..., "optim": ...} keyed by parameter name (DTensor shards under FSDP2), for dcp.save/load."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)
    return {"model": model_state, "optim": optim_state}


def save_dcp(state: dict, folder) -> None:
    """Every process writes its shards into `folder` (a collective call; DCP fsyncs each file)."""
    import torch.distributed.checkpoint as dcp

    dcp.save(state, checkpoint_id=str(folder))


def load_dcp(folder, model, optimizer) -> None:
    """Restore model and optimizer from a DCP folder, resharding to this run's processes (or a plain model)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    state = sharded_state(model, optimizer)
    with warnings.catch_warnings():  # a plain model in one process: DCP says it loads without a process group
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
