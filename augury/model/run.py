"""Load a trained run (its newest intact checkpoint, model config and tokenizer) for sampling, export or eval.

    model, tokenizer, cfg = load_run("runs/quickstart")          # or load_run(RUN, checkpoint=RUN/checkpoints/...)
"""

from __future__ import annotations

from pathlib import Path

import yaml

from augury.model.config import ModelConfig
from augury.model.transformer import Transformer


class RunLoadError(ValueError):
    pass


def run_model_config(run_dir: str | Path) -> ModelConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunLoadError(f"{run_dir} is not an augury run folder (no config.yaml)")
    raw = yaml.safe_load(path.read_text()) or {}
    fields = ModelConfig.__dataclass_fields__
    return ModelConfig(**{k: v for k, v in (raw.get("model") or {}).items() if k in fields}).resolved()


def run_config_section(run_dir: str | Path, name: str) -> dict | None:
    """One section of the run's config.yaml as saved (e.g. `images`), or None when it has none."""
    raw = yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {}
    return raw.get(name) or None


def run_vision_config(run_dir: str | Path):
    """The run's VisionConfig (an image-text run), or None for a text-only run."""
    from augury.model.vision import VisionConfig

    raw = run_config_section(run_dir, "vision")
    if raw is None:
        return None
    fields = VisionConfig.__dataclass_fields__
    return VisionConfig(**{k: v for k, v in raw.items() if k in fields})


def load_run(run_dir: str | Path, checkpoint: str | Path | None = None, device="cpu"):
    """(model in eval mode, tokenizers.Tokenizer, ModelConfig) from a run folder or one of its checkpoints.

    An image-text run (a `vision` section in its config) loads as an ImageTextModel.
    """
    from tokenizers import Tokenizer

    from augury.model.weights import (
        CheckpointError,
        find_latest_checkpoint,
        load_checkpoint_weights,
        verify_checkpoint,
    )

    run_dir = Path(run_dir)
    cfg = run_model_config(run_dir)
    if checkpoint is None:
        ckpt = find_latest_checkpoint(run_dir)
        if ckpt is None:
            raise RunLoadError(f"{run_dir} has no intact checkpoint (has training written one yet?)")
    else:
        ckpt = Path(checkpoint)
        if not ckpt.exists():  # a mistyped path, not a damaged checkpoint
            raise RunLoadError(f"checkpoint {ckpt} does not exist (a run's checkpoints are its "
                               f"checkpoints/step_NNNNNNNN folders)")
        if not ckpt.is_dir():
            raise RunLoadError(f"checkpoint {ckpt} is a file, not a checkpoint folder (checkpoints/step_NNNNNNNN)")
        problem = verify_checkpoint(ckpt)
        if problem:
            raise RunLoadError(f"checkpoint {ckpt} is not usable: {problem}")
    vision = run_vision_config(run_dir)
    if vision is not None:
        from augury.model.vision import ImageTextModel

        model = ImageTextModel(cfg, vision)
    else:
        model = Transformer(cfg)
    try:
        load_checkpoint_weights(model, ckpt)
    except CheckpointError as err:  # e.g. --checkpoint from another run: one error, not a traceback
        raise RunLoadError(f"checkpoint {ckpt} does not fit the model of {run_dir} (its config.yaml): {err}") from None
    model.to(device).eval()
    tok_path = run_dir / "tokenizer.json"
    if not tok_path.is_file():
        raise RunLoadError(f"{run_dir} has no tokenizer.json")
    return model, Tokenizer.from_file(str(tok_path)), cfg
