"""Shared by the benchmarks that train a preset's planned runs: the preset, its prepared corpus's vocabulary and
its plan (rungs, then the target), without progress bars.

    from benchmarks.preset_runs import load_preset_runs
    cfg, vocab, runs = load_preset_runs("cpu-demo")
    overrides = dotted_overrides(["recipe.lr_batch_exponent=0.5"])   # --set KEY=VALUE, as load_forecast_config takes
    summary = reusable_summary(run_dir, train_cfg)   # a finished run of exactly this recipe in run_dir, else None
    out = scratch_folder("runs/ladder-jobs")         # emptied for a new measurement, if a benchmark made it
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


def reusable_summary(run_dir, train_cfg) -> dict | None:
    """The summary of the finished run in `run_dir` when it is `train_cfg`'s run, else None (nothing finished there).
    `finished_summary` matches shape and length only: a run finished there at another learning rate or width (a
    sweep rerun into the same folder with other settings) is an error, not a loss to print beside the new one."""
    import json
    from pathlib import Path

    from augury.forecast.runner import finished_summary

    summary = finished_summary(run_dir, train_cfg)
    if summary is None:
        return None
    saved = json.loads((Path(run_dir) / "manifest.json").read_text())["config"]
    lr, d_model = saved.get("optim", {}).get("lr"), saved.get("model", {}).get("d_model")
    if lr != train_cfg.optim.lr:
        raise SystemExit(f"{run_dir}: finished at learning rate {lr}, this sweep asks {train_cfg.optim.lr}; "
                         "give another --out (or remove the folder)")
    if train_cfg.model.d_model is not None and d_model != train_cfg.model.d_model:
        raise SystemExit(f"{run_dir}: finished at width {d_model}, this sweep asks {train_cfg.model.d_model}; "
                         "give another --out (or remove the folder)")
    return summary


SCRATCH_MARK = ".augury-benchmark-scratch"


def scratch_folder(path):
    """`path` emptied for a benchmark that trains from scratch. A folder only a benchmark made (it holds
    SCRATCH_MARK) is cleared; any other non-empty folder is refused with one line, so a mistyped --out never
    deletes a user's runs."""
    import shutil
    from pathlib import Path

    out = Path(path)
    if out.exists() and not (out / SCRATCH_MARK).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise SystemExit(f"--out {out}: exists and was not made by a benchmark; give a new or empty folder")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / SCRATCH_MARK).write_text("made by an augury benchmark; emptied by the next run of one\n")
    return out
