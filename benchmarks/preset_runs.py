"""Shared by the benchmarks that train a preset's planned runs: the preset, its prepared corpus's vocabulary and
its plan (rungs, then the target), without progress bars.

    from benchmarks.preset_runs import load_preset_runs
    cfg, vocab, runs = load_preset_runs("cpu-demo")
    overrides = dotted_overrides(["recipe.lr_batch_exponent=0.5"])   # --set KEY=VALUE, as load_forecast_config takes
"""

from __future__ import annotations


def load_preset_runs(preset: str):
    from augury.data import prepare_data
    from augury.forecast.config import load_forecast_config
    from augury.forecast.ladder import plan_runs

    cfg = load_forecast_config(preset, overrides={"progress": False})
    vocab = prepare_data(cfg.data, log=lambda *a, **k: None).tokenizer().get_vocab_size()
    return cfg, vocab, plan_runs(cfg, vocab)


def dotted_overrides(items: list[str]) -> dict:
    """["a.b=VALUE", ...] (VALUE read as YAML) as the nested dict `load_forecast_config(overrides=...)` takes."""
    import yaml

    overrides: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        node = overrides
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return overrides
