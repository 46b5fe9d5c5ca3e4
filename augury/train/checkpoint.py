"""Crash-safe checkpoints: `model.safetensors` + optimizer + trainer/data-loader/RNG state.

Layout: RUN/checkpoints/step_00000100/{model.safetensors, optimizer.pt, rng.json, trainer.json, manifest.json};
under FSDP2 (`parallel: fsdp`) `dcp/` (every process's shards of model and optimizer, torch.distributed.checkpoint)
replaces model.safetensors and optimizer.pt.
A checkpoint is written into a hidden temporary folder, every file fsynced, `manifest.json` (sha256 of each file)
written last, and the folder renamed into place; `latest` is then updated atomically. A `kill -9` at any moment
leaves either a complete, verified checkpoint or a temporary folder that loading ignores and the next save removes.
Loading verifies the manifest's hashes and falls back to the newest intact checkpoint.

    save_checkpoint(run_dir, step, model, optimizer, trainer_state={"step": step})
    ckpt = find_latest_checkpoint(run_dir)                      # None before the first save
    trainer_state = load_checkpoint(ckpt, model, optimizer)

`augury train --resume`, `augury sft|rl --resume true` and `augury forecast` resume through these.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from augury.io import atomic_write_text, not_a_folder, sha256_file
from augury.model.weights import (  # noqa: F401  (the read side lives with the model)
    CheckpointError,
    find_latest_checkpoint,
    load_checkpoint_weights,
    load_model_state,
    model_state_for_saving,
    step_checkpoints,
    verify_checkpoint,
)
from augury.train.config import TrainConfigError


def checkpoint_to_resume(out: Path, resume: bool | str, log, kind: str = "train") -> Path | None:
    """The checkpoint a run in `out` continues from (None: a fresh run); refuses to mix two runs in one folder.

    `resume`: True needs an intact checkpoint, False needs an empty folder, "auto" takes whichever is there.
    `kind` is what the caller trains ("train": a text run, or "image-text"): a folder another command made
    (`augury sft`, `rm`, `rl`, ...), a run of the other kind, or a folder of other files is refused, whatever
    `resume` says."""
    if why := not_a_folder(out):
        raise TrainConfigError(f"out: {why}")
    found = run_kind(out)
    if found is None and _foreign_files(out):
        raise TrainConfigError(f"--out {out} holds files that are not an augury run (no manifest.json), not "
                               f"{_describe(kind)}: choose another --out")
    if found is not None and found != kind:
        hint = ("resume a run with its own config.yaml, or choose another --out" if found in _TRAIN_KINDS
                else f"continue it with `augury {_command(found)}` or choose another --out")
        raise TrainConfigError(f"{out} holds {_describe(found)}, not {_describe(kind)}: {hint}")
    ckpt = find_latest_checkpoint(out, log=log) if out.exists() else None
    if resume is True and ckpt is None:
        raise TrainConfigError(f"--resume: no intact checkpoint in {out}/checkpoints to resume from")
    if resume is False and ckpt is not None:
        raise TrainConfigError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if resume is False and (out / "metrics.jsonl").exists():
        raise TrainConfigError(f"{out} holds a run that wrote no checkpoint (nothing to resume): delete it or "
                               f"choose another --out")
    return ckpt


def remove_unstarted_run(out: Path, created: bool) -> bool:
    """Remove what a run wrote into `out` when it stopped before its first checkpoint, so the same command can be
    run again: the folder's contents, and the folder itself when the run `created` it. A folder holding a
    checkpoint is left as it is. Whether anything was removed."""
    if not out.is_dir() or find_latest_checkpoint(out) is not None:
        return False
    wrote = any(out.iterdir())
    for path in out.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if created:
        out.rmdir()
    return wrote


# What a train run writes into its folder (manifest.json after tokenizer.json and config.yaml, metrics.jsonl and
# checkpoints/ after it; image_eval.json at the end of an image-text run), and what `augury forecast`'s torchrun
# launcher writes there before the processes start (augury/forecast/torchrun.py).
_RUN_FILES = frozenset({"tokenizer.json", "config.yaml", "manifest.json", "metrics.jsonl", "checkpoints",
                        "image_eval.json", "torchrun.yaml", "torchrun.log"})


def _foreign_files(out: Path) -> bool:
    """Whether `out` holds anything a train run does not write. A run killed before its manifest.json was written
    leaves only its own files (and perhaps an atomic write's `.NAME.*.tmp`): that folder is still its own."""
    if not out.is_dir():
        return False
    return any(p.name not in _RUN_FILES and not (p.name.startswith(".") and p.name.endswith(".tmp"))
               for p in out.iterdir())


def run_kind(out: Path) -> str | None:
    """What made the run in `out`, from its manifest.json: "train" (a text run), "image-text", or the command
    that wrote it ("sft", "rm", "rl", ...); None when there is no readable manifest."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    return str(manifest.get("kind") or ("train" if "config" in manifest else "unknown"))


_TRAIN_KINDS = {"train": "an `augury train` text run", "image-text": "an `augury train` image-text run",
                "unknown": "a run of unknown kind"}


def _command(kind: str) -> str:
    return {"reward_model": "rm"}.get(kind, kind)


def _describe(kind: str) -> str:
    return _TRAIN_KINDS.get(kind, f"an `augury {_command(kind)}` run")


def rng_state() -> dict:
    """Every RNG's state as plain JSON (no pickle in checkpoints)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state().tolist(),
             "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
             "python": [version, list(internal), gauss_next]}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        # a run resumed on fewer GPUs than it was saved on restores the devices it has (set_rng_state_all would
        # index past them)
        for device, saved in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(torch.tensor(saved, dtype=torch.uint8), device)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(run_dir: str | os.PathLike, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    trainer_state: dict, keep_last: int = 2) -> Path:
    root, name, tmp = _begin(run_dir, step, os.getpid())
    save_file(model_state_for_saving(model), str(tmp / "model.safetensors"), metadata={"step": str(step)})
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    return _finish(root, name, tmp, step, trainer_state, keep_last)


def save_sharded_checkpoint(run_dir: str | os.PathLike, step: int, model: torch.nn.Module,
                            optimizer: torch.optim.Optimizer, trainer_state: dict, keep_last: int = 2) -> Path:
    """The FSDP2 form, called by every process: each writes its shards of model and optimizer into `dcp/`
    (torch.distributed.checkpoint), then the first process writes the rest and renames the folder into place.
    Processes on several machines need a shared file system for the run folder."""
    import torch.distributed as dist

    from augury.train.fsdp import save_dcp, sharded_state

    state = sharded_state(model, optimizer)  # collective: before anything only the first process does
    owner = [os.getpid()]
    dist.broadcast_object_list(owner, src=0)  # one temporary folder for all processes, named by the first
    if dist.get_rank() == 0:
        _begin(run_dir, step, owner[0])
    dist.barrier()
    root = Path(run_dir) / "checkpoints"
    name = f"step_{step:08d}"
    tmp = root / f".tmp-{name}-{owner[0]}"
    save_dcp(state, tmp / "dcp")
    final = _finish(root, name, tmp, step, trainer_state, keep_last) if dist.get_rank() == 0 else root / name
    dist.barrier()
    return final


def _begin(run_dir, step: int, pid: int) -> tuple[Path, str, Path]:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    tmp = root / f".tmp-{name}-{pid}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return root, name, tmp


def _finish(root: Path, name: str, tmp: Path, step: int, trainer_state: dict, keep_last: int) -> Path:
    """RNG and trainer state, fsync, a manifest of every file's sha256 written last, rename, prune."""
    (tmp / "rng.json").write_text(json.dumps(rng_state()))
    (tmp / "trainer.json").write_text(json.dumps(trainer_state, indent=2))
    files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    for f in files:
        _fsync(tmp / f)
    for d in {(tmp / f).parent for f in files}:
        _fsync(d)
    manifest = {"step": step, "files": {f: sha256_file(tmp / f) for f in files}}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    _fsync(tmp / "manifest.json")
    _fsync(tmp)
    final = root / name
    if final.exists():  # re-saving a step (e.g. after resuming from it): move the old one aside first
        trash = root / f".old-{name}-{os.getpid()}"
        os.replace(final, trash)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync(root)
    atomic_write_text(root / "latest", name + "\n")
    _prune(root, keep_last, step)
    return final


def _prune(root: Path, keep_last: int, step: int) -> None:
    """Keep the `keep_last` newest checkpoints up to `step` (the one just written). A folder numbered past it is
    one a resume skipped as corrupt: it does not count as newer (counting it could delete the checkpoint just
    written), and saving its step replaces it."""
    for _, p in [(s, p) for s, p in step_checkpoints(root) if s <= step][:-keep_last]:
        shutil.rmtree(p, ignore_errors=True)
    for p in root.iterdir():  # leftovers of processes killed mid-save
        if p.name.startswith((".tmp-", ".old-")) and not p.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(p, ignore_errors=True)


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict:
    """Restore model (and optimizer and RNG) from `path`; returns the trainer state.

    A sharded checkpoint (`dcp/`, written under FSDP2) loads into a sharded model on any number of processes, or
    into a plain one; a `model.safetensors` checkpoint loads into a plain (or DDP) model only."""
    if (path / "dcp").is_dir():
        from augury.train.fsdp import load_dcp

        if optimizer is None:
            load_checkpoint_weights(model, path)
        else:
            load_dcp(path / "dcp", model, optimizer)
    elif is_sharded(model):
        raise CheckpointError(f"{path} was written by a run without FSDP (model.safetensors): continue it with "
                              f"parallel: ddp")
    else:
        load_model_state(model, path / "model.safetensors")
        if optimizer is not None:
            # read onto the CPU: a run may resume on another device (a GPU run on a machine without one), and
            # load_state_dict moves each state tensor to its parameter's device
            optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    if optimizer is not None:
        set_rng_state(json.loads((path / "rng.json").read_text()))
    return json.loads((path / "trainer.json").read_text())
