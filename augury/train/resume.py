"""What a resumed run must share with the run it continues, and what it carries over from it.

A resume continues one trajectory: the same model, data, tokenizer, optimizer and schedule, seed, run length and
effective dtype. Only options that never change the sequence of updates may differ (RESUMABLE): how often the
run logs, validates and checkpoints, where this invocation stops, the progress bar, the device and how the work
is spread over processes (a text run's global batch must stay the same, and it keeps validating on the run's
batches: keep_validation_batches). Anything else is refused with one error naming every difference, before the
checkpoint is loaded or a file of the run is rewritten.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from augury.io import atomic_write_text, read_jsonl, sha256_file, to_jsonable, utc_now
from augury.train.config import TrainConfig, TrainConfigError

# Dotted config keys a resume may change. `dtype` may be spelt differently ("auto" vs "bf16") as long as the
# effective autocast dtype, compared on its own, stays the same.
RESUMABLE = frozenset({"out", "progress", "log_every", "eval_every", "ckpt_every", "keep_last", "stop_after",
                       "peak_flops", "device", "compile", "parallel", "dtype", "data.cache_dir"})
# How a text run's global batch is split (processes x batch_size x grad_accum) may change; its product may not.
SPLIT_OF_THE_BATCH = frozenset({"batch_size", "grad_accum"})

_IDENTITY_NAMES = {"tokenizer_sha256": "tokenizer.json", "train_sha256": "train tokens", "val_sha256": "val tokens"}


def data_identity(data) -> dict:
    """sha256 of the prepared data a text run trains on: its tokenizer and the token shards of both splits."""
    splits = data.manifest.get("splits", {})
    return {"tokenizer_sha256": sha256_file(data.tokenizer_path),
            "train_sha256": splits.get("train", {}).get("sha256"),
            "val_sha256": splits.get("val", {}).get("sha256")}


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_resume_compatible(out: Path, cfg: TrainConfig, dtype: str, identity: dict,
                            step_tokens: int | None = None) -> dict:
    """The manifest of the run in `out` ({} when it has none), after checking that `cfg` (resolved as the run's was)
    continues it: raises TrainConfigError listing every difference on one line.

    `dtype`: the effective autocast dtype; `identity`: sha256s of what the run reads (data_identity for a text
    run); `step_tokens`: a text run's global batch in tokens (None: batch_size itself must match)."""
    path = out / "manifest.json"
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TrainConfigError(f"cannot resume: {path} is unreadable ({err})") from None
    saved = manifest.get("config") if isinstance(manifest, dict) else None
    if not isinstance(saved, dict) or not isinstance(saved.get("model"), dict):
        raise TrainConfigError(f"cannot resume: {path} does not record the run's configuration")
    resumable = RESUMABLE | (SPLIT_OF_THE_BATCH | {"eval_batch_size"} if step_tokens is not None else frozenset())
    before, now = _flat(saved), _flat(to_jsonable(cfg))
    # A key the saved config lacks is an option added since the run started: nothing to compare it with.
    diffs = [f"{key}: checkpoint {before[key]!r}, now {value!r}" for key, value in now.items()
             if key in before and key not in resumable and before[key] != value]
    if step_tokens is not None and cfg.eval_batch_size is not None and cfg.eval_batch_size != eval_batch(saved):
        # unset, the run's own validation batch is kept (keep_validation_batches)
        diffs.append(f"eval_batch_size (the validation batch): checkpoint {eval_batch(saved)!r}, now "
                     f"{cfg.eval_batch_size!r}")
    if manifest.get("dtype", dtype) != dtype:
        diffs.append(f"dtype (effective): checkpoint {manifest['dtype']}, now {dtype}")
    if step_tokens is not None and manifest.get("tokens_per_step", step_tokens) != step_tokens:
        diffs.append(f"tokens per step (batch_size x seq_len x grad_accum x processes): checkpoint "
                     f"{manifest['tokens_per_step']}, now {step_tokens}")
    recorded = manifest.get("identity") or {}
    changed = [_IDENTITY_NAMES.get(k, k) for k, v in identity.items() if k in recorded and recorded[k] != v]
    if changed:
        diffs.append(f"the prepared data differ ({', '.join(changed)}: the corpus or its preparation changed "
                     f"since the run started; restore it, or train a new run in another --out)")
    if diffs:
        raise TrainConfigError(f"cannot resume {out}: the checkpoint was made with another configuration: "
                               + "; ".join(diffs))
    return manifest


def eval_batch(config: dict) -> int | None:
    """The sequences per validation batch of a saved config: eval_batch_size, or batch_size when it is unset."""
    return config.get("eval_batch_size") or config.get("batch_size")


def keep_validation_batches(cfg: TrainConfig, manifest: dict) -> TrainConfig:
    """`cfg` validating on the batches of the run it continues. With eval_batch_size unset a validation batch is
    batch_size sequences, and a resume may split the global batch otherwise (a smaller batch_size, more
    grad_accum or processes): eval_batch_size is then set to the run's, so val_loss and val_bpb stay measured on
    the same tokens before and after the resume."""
    saved = eval_batch(manifest.get("config") or {})
    if cfg.eval_batch_size is not None or saved is None or saved == cfg.batch_size:
        return cfg
    return dataclasses.replace(cfg, eval_batch_size=saved)


def carry_over(manifest: dict, saved: dict, step: int) -> dict:
    """`manifest` (this invocation's) keeping the run's first start and listing every resume (step and time)."""
    if saved:
        manifest["created"] = saved.get("created", manifest["created"])
        manifest["resumes"] = [*saved.get("resumes", []), {"step": step, "at": utc_now()}]
    return manifest


def trim_metrics(metrics: Path, step: int) -> None:
    """Drop records an interrupted process wrote after the checkpoint at `step` (all of them when there was none
    and the run starts afresh): they will be recomputed, not appended twice."""
    if metrics.exists():
        kept = [r for r in read_jsonl(metrics) if r.get("step", 0) <= step]
        atomic_write_text(metrics, "".join(json.dumps(r) + "\n" for r in kept))
