"""The run folders post-training writes: ordinary augury runs (config.yaml with the model, tokenizer.json,
checkpoints, metrics.jsonl, manifest.json), so sampling, export and evaluation take them as they are.

    ckpt = open_output(out, resume)                      # None: a new run; refuses a used folder without --resume
    start_output(out, base_run, model_cfg, "sft", cfg)   # tokenizer + config.yaml of a new run
    write_manifest(out, "sft", finished=False, base_run=...)
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import yaml

from augury.align.data import AlignDataError
from augury.io import atomic_write_json, atomic_write_text, git_hash, to_jsonable, utc_now


def open_output(out: Path, resume: bool) -> Path | None:
    """The newest intact checkpoint to resume from, or None for a new run in an empty (or missing) folder."""
    from augury.train.checkpoint import find_latest_checkpoint

    if not resume:
        if out.exists() and any(out.iterdir()):
            raise AlignDataError(f"--out {out} exists and is not empty (pass --resume true to continue it)")
        return None
    ckpt = find_latest_checkpoint(out)
    if ckpt is None:
        raise AlignDataError(f"--resume: {out} has no intact checkpoint")
    return ckpt


def start_output(out: Path, source_run: str, model_cfg, section: str, cfg) -> None:
    """A new run's tokenizer (the source run's) and config.yaml (the model, and `cfg` under `section`)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(source_run) / "tokenizer.json", out / "tokenizer.json")
    atomic_write_text(out / "config.yaml", yaml.safe_dump({"model": to_jsonable(model_cfg), section: asdict(cfg)},
                                                          sort_keys=False))


def write_manifest(out: Path, kind: str, **fields) -> None:
    atomic_write_json(out / "manifest.json", {"kind": kind, "created": utc_now(), "git": git_hash(), **fields})
