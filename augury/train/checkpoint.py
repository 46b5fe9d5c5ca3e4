"""Crash-safe checkpoints: `model.safetensors` + optimizer + trainer/data-loader/RNG state.

Layout: RUN/checkpoints/step_00000100/{model.safetensors, optimizer.pt, rng.json, trainer.json, manifest.json}.
A checkpoint is written into a hidden temporary folder, every file fsynced, `manifest.json` (sha256 of each file)
written last, and the folder renamed into place; `latest` is then updated atomically. A `kill -9` at any moment
leaves either a complete, verified checkpoint or a temporary folder that loading ignores and the next save removes.
Loading verifies the manifest's hashes and falls back to the newest intact checkpoint.
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

from augury.io import atomic_write_text, sha256_file
from augury.model.weights import (  # noqa: F401  (the read side lives with the model)
    CheckpointError,
    find_latest_checkpoint,
    load_model_state,
    model_state_for_saving,
    step_checkpoints,
    verify_checkpoint,
)


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
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(run_dir: str | os.PathLike, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    trainer_state: dict, keep_last: int = 2) -> Path:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(model_state_for_saving(model), str(tmp / "model.safetensors"), metadata={"step": str(step)})
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "rng.json").write_text(json.dumps(rng_state()))
    (tmp / "trainer.json").write_text(json.dumps(trainer_state, indent=2))
    files = ["model.safetensors", "optimizer.pt", "rng.json", "trainer.json"]
    for f in files:
        _fsync(tmp / f)
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
    _prune(root, keep_last)
    return final


def _prune(root: Path, keep_last: int) -> None:
    for _, p in step_checkpoints(root)[:-keep_last]:
        shutil.rmtree(p, ignore_errors=True)
    for p in root.iterdir():  # leftovers of processes killed mid-save
        if p.name.startswith((".tmp-", ".old-")) and not p.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(p, ignore_errors=True)


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict:
    """Restore model (and optimizer and RNG) from `path`; returns the trainer state."""
    load_model_state(model, path / "model.safetensors")
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        set_rng_state(json.loads((path / "rng.json").read_text()))
    return json.loads((path / "trainer.json").read_text())
