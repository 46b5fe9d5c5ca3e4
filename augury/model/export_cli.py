"""`augury export RUN --hf OUT`: write a run's newest checkpoint in the Hugging Face Llama layout."""

from __future__ import annotations

from augury.command import function_cli
from augury.errors import UsageError


def export(run: str, *, hf: str, checkpoint: str | None = None, overwrite: bool = False) -> None:
    """Export a trained run to the Hugging Face Llama layout.

    Args:
        run: the run folder (holds config.yaml, tokenizer.json, checkpoints/).
        hf: output folder for config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
            generation_config.json.
        checkpoint: a specific checkpoint folder; default: the run's newest intact one.
        overwrite: replace a previous export in --hf; a folder holding anything else (a run, other files) is never
            replaced.
    """
    from pathlib import Path

    from augury.model.export import check_export_target, export_hf
    from augury.model.run import load_run

    sources = (run,) if checkpoint is None else (run, checkpoint)
    try:
        check_export_target(hf, overwrite, sources)
        model, _, _ = load_run(run, checkpoint)
        out = export_hf(model, Path(run) / "tokenizer.json", hf, overwrite=overwrite, sources=sources)
    except ValueError as err:  # ExportError, RunLoadError, or a model the layout cannot hold (an output bias)
        raise UsageError(str(err)) from None
    print(f"exported {run} -> {out} (load with transformers.LlamaForCausalLM.from_pretrained)")


def main(argv: list[str]) -> int:
    function_cli(export, argv, prog="augury export")
    return 0
