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
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from augury.io import atomic_write_text, sha256_file

_STEP_DIR = re.compile(r"^step_(\d{8,})$")


class CheckpointError(RuntimeError):
    pass


def model_state_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with a tied output projection dropped (safetensors stores no shared tensors)."""
    state = model.state_dict()
    if getattr(model, "cfg", None) is not None and model.cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def load_model_state(model: torch.nn.Module, path: Path) -> None:
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed_missing = {"lm_head.weight"} if model.cfg.tie_embeddings else set()
    if set(missing) - allowed_missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match the model (missing {sorted(set(missing) - allowed_missing)}, "
                              f"unexpected {sorted(unexpected)})")


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


def _step_dirs(root: Path) -> list[tuple[int, Path]]:
    out = []
    if root.is_dir():
        for p in root.iterdir():
            m = _STEP_DIR.match(p.name)
            if m and p.is_dir():
                out.append((int(m.group(1)), p))
    return sorted(out)


def _prune(root: Path, keep_last: int) -> None:
    for _, p in _step_dirs(root)[:-keep_last]:
        shutil.rmtree(p, ignore_errors=True)
    for p in root.iterdir():  # leftovers of processes killed mid-save
        if p.name.startswith((".tmp-", ".old-")) and not p.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(p, ignore_errors=True)


def verify_checkpoint(path: Path) -> str | None:
    """None if the checkpoint is complete and its files match the manifest, else the reason it is not."""
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        return "no manifest.json (incomplete write)"
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError:
        return "manifest.json is not valid JSON"
    for name, digest in manifest.get("files", {}).items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if sha256_file(f) != digest:
            return f"{name} does not match its sha256"
    return None


def find_latest_checkpoint(run_dir: str | os.PathLike, log=None) -> Path | None:
    """The newest intact checkpoint of a run (corrupt or partial ones are skipped, with a message)."""
    for _, path in reversed(_step_dirs(Path(run_dir) / "checkpoints")):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        if log:
            log(f"skipping checkpoint {path.name}: {problem}")
    return None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict:
    """Restore model (and optimizer and RNG) from `path`; returns the trainer state."""
    load_model_state(model, path / "model.safetensors")
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        set_rng_state(json.loads((path / "rng.json").read_text()))
    return json.loads((path / "trainer.json").read_text())
