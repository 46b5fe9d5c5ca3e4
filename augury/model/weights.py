"""Reading a run's weights: the newest intact checkpoint, its integrity check, and loading it into a model.

The read side of `augury.train.checkpoint`, kept with the model so that everything that loads a run (sampling,
export, evaluation, serving) needs nothing from the training package.

    ckpt = find_latest_checkpoint("runs/quickstart")     # None when no intact checkpoint exists
    load_checkpoint_weights(model, ckpt)                  # model.safetensors, or the dcp/ folder of an FSDP run
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from augury.io import sha256_file

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
    own = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} (the model's: {tuple(own[k].shape)})" for k, v in state.items()
             if k in own and v.shape != own[k].shape]
    if wrong:  # checked here: load_state_dict would raise a RuntimeError listing every tensor
        raise CheckpointError(f"{path}: weights of another shape than the model's: {wrong[0]}"
                              + (f" and {len(wrong) - 1} more" if len(wrong) > 1 else ""))
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed_missing = {"lm_head.weight"} if model.cfg.tie_embeddings else set()
    if set(missing) - allowed_missing or unexpected:
        missing_names = sorted(set(missing) - allowed_missing)
        raise CheckpointError(f"{path}: weights do not match the model (missing {missing_names}, "
                              f"unexpected {sorted(unexpected)})")


def load_dcp_weights(model: torch.nn.Module, folder: Path) -> None:
    """Load the model weights of a sharded (`torch.distributed.checkpoint`) checkpoint into a plain model, in one
    process and without a process group; the shards are assembled by parameter name."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    saved = {k[len("model."):] for k, v in dcp.FileSystemReader(str(folder)).read_metadata().state_dict_metadata.items()
             if k.startswith("model.") and isinstance(v, TensorStorageMetadata)}
    state = model.state_dict()
    if set(state) != saved:
        raise CheckpointError(f"{folder}: weights do not match the model (missing {sorted(set(state) - saved)}, "
                              f"unexpected {sorted(saved - set(state))})")
    import warnings

    with warnings.catch_warnings():  # DCP warns that it loads in one process: that is the intent here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load({"model": state}, checkpoint_id=str(folder), no_dist=True)  # in place, into the model's tensors


def load_checkpoint_weights(model: torch.nn.Module, ckpt: Path) -> None:
    """The weights of a checkpoint folder: `model.safetensors` (one process, DDP) or `dcp/` (FSDP2, sharded)."""
    ckpt = Path(ckpt)
    if (ckpt / "model.safetensors").is_file():
        load_model_state(model, ckpt / "model.safetensors")
    elif (ckpt / "dcp").is_dir():
        load_dcp_weights(model, ckpt / "dcp")
    else:
        raise CheckpointError(f"{ckpt} holds neither model.safetensors nor a dcp/ folder")


def step_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every step_NNNNNNNN folder under `root`, oldest first (intact or not)."""
    out = []
    if root.is_dir():
        for p in root.iterdir():
            m = _STEP_DIR.match(p.name)
            if m and p.is_dir():
                out.append((int(m.group(1)), p))
    return sorted(out)


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
    for _, path in reversed(step_checkpoints(Path(run_dir) / "checkpoints")):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        if log:
            log(f"skipping checkpoint {path.name}: {problem}")
    return None


def weights_key(run_dir: str | os.PathLike, checkpoint: str | os.PathLike | None) -> dict:
    """What identifies the model a run's checkpoint holds, at no hashing cost: the checkpoint's manifest (it lists
    every weight file's sha256) with the run's config and tokenizer. A run retrained into the same folder reaches
    the same step names, so results keyed by the path and step alone would be reused for other weights."""
    def digest(path: Path) -> str | None:
        try:
            return sha256_file(path)
        except OSError:
            return None  # loading it fails too, with its own error

    run_dir = Path(run_dir)
    return {"manifest_sha256": digest(Path(checkpoint) / "manifest.json") if checkpoint else None,
            "config_sha256": digest(run_dir / "config.yaml"), "tokenizer_sha256": digest(run_dir / "tokenizer.json")}

