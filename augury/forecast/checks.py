"""What a forecast configuration must satisfy before any training starts: every field that can be checked without
data, each failure a ForecastConfigError naming the key. `augury forecast` and `augury ladder plan` call it first.

    from augury.forecast.checks import validate
    validate(load_forecast_config("cpu-demo"))
"""

from __future__ import annotations

from pathlib import Path

from augury.forecast.config import ForecastConfig, ForecastConfigError, typed_fields


def min_rungs(law: str) -> int:
    """The fewest distinct rungs a forecast with `law` can be fitted on: one more than its parameters."""
    from augury.scaling.laws import get_law

    return get_law(law).n_free + 1


def validate(cfg: ForecastConfig) -> None:
    """Check every field that can be checked without data; ForecastConfigError names the key."""
    lad, rec, tgt, cap = cfg.ladder, cfg.recipe, cfg.target, cfg.capability
    from augury.model import ModelConfig
    from augury.scaling.limits import min_bootstrap
    from augury.train.config import OptimConfig

    model = typed_fields(ModelConfig, rec.model, "recipe.model")
    typed_fields(OptimConfig, rec.optim, "recipe.optim")
    if not 0 < lad.largest_fraction <= 1:
        raise ForecastConfigError(f"ladder.largest_fraction must be in (0, 1], got {lad.largest_fraction!r}: the "
                                  f"largest rung is a fraction of the target's compute")
    if lad.largest_fraction == 1:
        raise ForecastConfigError("ladder.largest_fraction = 1 makes the largest rung as big as the target: "
                                  "nothing would be forecast")
    if lad.smallest_fraction is not None and not 0 < lad.smallest_fraction < lad.largest_fraction:
        raise ForecastConfigError(f"ladder.smallest_fraction must be in (0, largest_fraction={lad.largest_fraction}),"
                                  f" got {lad.smallest_fraction!r}")
    if lad.tokens not in ("compute", "ratio"):
        raise ForecastConfigError(f"ladder.tokens must be 'compute' or 'ratio', got {lad.tokens!r}")
    if lad.seeds < 1:
        raise ForecastConfigError(f"ladder.seeds must be >= 1, got {lad.seeds}")
    if cfg.fit.law not in ("gpt4-loss", "power-loss"):
        raise ForecastConfigError(f"fit.law must be 'gpt4-loss' or 'power-loss', got {cfg.fit.law!r}")
    need = min_rungs(cfg.fit.law)
    if lad.rungs < need:
        raise ForecastConfigError(f"ladder.rungs must be >= {need} for fit.law {cfg.fit.law!r} (one more rung than "
                                  f"its {need - 1} parameters: through as many rungs as parameters the law passes "
                                  f"exactly and leaves no scatter to measure its uncertainty by), got {lad.rungs}")
    if rec.dial not in ("depth", "width"):
        raise ForecastConfigError(f"recipe.dial must be 'depth' or 'width', got {rec.dial!r}")
    size, size_key = (tgt.d_model, "target.d_model") if rec.dial == "width" else (tgt.depth, "target.depth")
    # the other dial's target size would be dropped without a word: the target would not be the model asked for
    if rec.dial == "width" and tgt.depth is not None:
        raise ForecastConfigError(f"target.depth has no effect under recipe.dial='width': every run has "
                                  f"recipe.model.depth={model.get('depth')} layers and the target's size is "
                                  f"target.d_model (or recipe.dial='depth' for a depth ladder)")
    if rec.dial == "depth" and tgt.d_model is not None:
        raise ForecastConfigError("target.d_model has no effect under recipe.dial='depth': the depth sets the width "
                                  "(recipe.model.aspect_ratio) and the target's size is target.depth (or "
                                  "recipe.dial='width' for a width ladder)")
    if size is None and tgt.flops is None:
        raise ForecastConfigError(f"set {size_key} (and optionally target.tokens) or target.flops")
    if rec.dial == "width":
        if not isinstance(model.get("depth"), int) or model["depth"] < rec.min_depth:
            raise ForecastConfigError(f"the width dial needs recipe.model.depth (an integer >= recipe.min_depth="
                                      f"{rec.min_depth}): every run has that many layers")
        if rec.width_step < 2 or rec.min_width < rec.width_step or rec.min_width % rec.width_step:
            raise ForecastConfigError("recipe.width_step must be >= 2 and recipe.min_width a multiple of it")
        if tgt.d_model is not None and tgt.d_model < rec.min_width:
            raise ForecastConfigError(f"target.d_model={tgt.d_model} is below recipe.min_width={rec.min_width}: the "
                                      f"target is smaller than the ladder")
        if tgt.d_model is not None and tgt.d_model % rec.width_step:
            raise ForecastConfigError(f"target.d_model={tgt.d_model} must be a multiple of recipe.width_step="
                                      f"{rec.width_step}")
    if rec.dial == "depth" and tgt.depth is not None and tgt.depth < rec.min_depth:
        raise ForecastConfigError(f"target.depth={tgt.depth} is below recipe.min_depth={rec.min_depth}: the target "
                                  f"is smaller than the ladder")
    for name, v in (("target.tokens", tgt.tokens), ("target.flops", tgt.flops)):
        if v is not None and v <= 0:
            raise ForecastConfigError(f"{name} must be > 0, got {v!r}")
    if rec.tokens_per_param <= 0 or rec.steps_per_run < 1 or rec.min_depth < 1 or rec.seq_len < 2:
        raise ForecastConfigError("recipe.tokens_per_param, steps_per_run, min_depth and seq_len must be positive")
    if not 1 <= rec.min_batch_tokens <= rec.max_batch_tokens:
        raise ForecastConfigError("recipe.min_batch_tokens must be in [1, recipe.max_batch_tokens]")
    if rec.max_epochs <= 0:
        raise ForecastConfigError("recipe.max_epochs must be > 0")
    if not 0 <= rec.batch_exponent <= 1 or (rec.batch_exponent < 1 and rec.batch_base_tokens <= 0):
        raise ForecastConfigError("recipe.batch_exponent must be in [0, 1], and below 1 it needs "
                                  "recipe.batch_base_tokens > 0 (the run tokens that take steps_per_run steps)")
    if rec.lr_batch_exponent and (rec.optim.get("lr") is None or rec.lr_base_batch_tokens <= 0):
        raise ForecastConfigError("recipe.lr_batch_exponent needs recipe.optim.lr (the learning rate at "
                                  "recipe.lr_base_batch_tokens tokens per step) and lr_base_batch_tokens > 0")
    if cap.enabled and (cap.samples < 1 or cap.problems < cap.buckets or cap.buckets < 1
                        or not 1 <= cap.min_target_tokens <= cap.max_target_tokens):
        raise ForecastConfigError("capability: need samples >= 1, problems >= buckets >= 1 and "
                                  "1 <= min_target_tokens <= max_target_tokens")
    if cap.enabled and not cap.temperature > 0:
        raise ForecastConfigError(f"capability.temperature must be > 0 (samples are drawn from the model's "
                                  f"distribution at that temperature), got {cap.temperature!r}")
    if cap.enabled and cap.context_tokens < 1:
        raise ForecastConfigError(f"capability.context_tokens must be >= 1 (the prompt: the file's tokens before "
                                  f"the answer), got {cap.context_tokens}")
    if cap.span not in ("line", "span", "copy"):
        raise ForecastConfigError(f"capability.span must be 'line', 'span' or 'copy', got {cap.span!r}")
    if cfg.executor not in ("local", "ray"):
        raise ForecastConfigError(f"executor must be 'local' or 'ray', got {cfg.executor!r}")
    if cfg.rungs_per_gpu < 1:
        raise ForecastConfigError(f"rungs_per_gpu must be >= 1, got {cfg.rungs_per_gpu}")
    if cfg.gpu_memory_gib is not None and cfg.gpu_memory_gib <= 0:
        raise ForecastConfigError(f"gpu_memory_gib must be > 0, got {cfg.gpu_memory_gib}")
    if cfg.jobs < 1:
        raise ForecastConfigError(f"jobs must be >= 1, got {cfg.jobs}")
    if cfg.threads is not None and cfg.threads < 1:
        raise ForecastConfigError(f"threads must be >= 1 (or unset: torch's default), got {cfg.threads}")
    if cfg.target_procs < 1:
        raise ForecastConfigError(f"target_procs must be >= 1, got {cfg.target_procs}")
    if cfg.text_folder is not None and not Path(cfg.text_folder).is_dir():
        raise ForecastConfigError(f"text_folder {cfg.text_folder!r} is not a folder")
    if not 0 < cfg.fit.level < 1:
        raise ForecastConfigError(f"fit.level must be in (0, 1), got {cfg.fit.level}")
    # the bootstrap gives the parameter intervals, the capability buckets' intervals and (interval: bootstrap) the
    # forecast's own: every setting of fit.interval needs it
    need = min_bootstrap(cfg.fit.level)
    if cfg.fit.bootstrap < need:
        raise ForecastConfigError(f"fit.bootstrap must be at least {need} resamples for a {100 * cfg.fit.level:g}% "
                                  f"interval (fit.level; one beyond each end), got {cfg.fit.bootstrap}")
    if not cfg.fit.huber_delta > 0:
        raise ForecastConfigError(f"fit.huber_delta must be > 0, got {cfg.fit.huber_delta}")
    if cfg.fit.compute not in ("flops", "non-embedding"):
        raise ForecastConfigError(f"fit.compute must be 'flops' or 'non-embedding', got {cfg.fit.compute!r}")
    if cfg.fit.interval not in ("bootstrap", "prediction", "random-effects"):
        raise ForecastConfigError(f"fit.interval must be 'bootstrap', 'prediction' or 'random-effects', got "
                                  f"{cfg.fit.interval!r}")
    if cfg.fit.interval != "bootstrap" and cfg.fit.law != "power-loss":
        raise ForecastConfigError(f"fit.interval {cfg.fit.interval!r} needs fit.law 'power-loss' (a straight line in "
                                  f"log-log)")
    if cfg.fit.interval == "random-effects" and cfg.ladder.seeds < 2:
        raise ForecastConfigError("fit.interval 'random-effects' needs ladder.seeds >= 2 (the seed-to-seed scatter "
                                  "within a rung is what the rungs' deviations from the line are measured against)")


def check_device(cfg: ForecastConfig) -> None:
    """ForecastConfigError when `device: cuda` is asked for on a machine where torch sees no GPU: said before
    anything is written or probed, not as the first run's traceback. (Planning alone needs no device.)"""
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ForecastConfigError("device: cuda, but torch sees no CUDA device on this machine; use device auto or "
                                  "cpu, or run where a GPU is visible")
