"""Configuration of `augury forecast` and `augury ladder plan`: typed dataclasses loaded from a preset YAML.

A preset is a plain YAML file in `augury/forecast/presets/` (smoke, cpu-demo, gpu, naive-demo); copy one, edit it
and pass it with `--config FILE`. Dotted overrides work on top: `--ladder.rungs 6 --target.tokens 2000000`.

    from augury.forecast.config import load_forecast_config
    cfg = load_forecast_config("smoke", overrides={"out": "runs/f"})
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from augury.data import DataConfig

PRESET_DIR = Path(__file__).resolve().parent / "presets"
PRESETS = ("smoke", "cpu-demo", "gpu", "naive-demo")


class ForecastConfigError(ValueError):
    """A forecast configuration that cannot work; raised before any training starts."""


@dataclass
class RecipeConfig:
    """The one training recipe every rung and the target share, scaled by the size dial.

    Args:
        model: ModelConfig fields common to every run (aspect_ratio, head_dim, parametrization, ...); `depth`
            is chosen per run by the ladder.
        optim: OptimConfig fields common to every run (lr, schedule, warmup_frac, min_lr_ratio, ...). Under µP
            one lr holds at every width.
        lr_width_exponent: scale the learning rate as (d_model / lr_base_width)^(-exponent) per run: 0 under µP
            (one lr at every width); the naive-demo preset's standard-parametrization rule uses 0.5 (lr ∝ 1/√width).
        lr_base_width: the width at which optim.lr applies unscaled.
        lr_batch_exponent: scale the learning rate as (batch tokens / lr_base_batch_tokens)^exponent per run. µP
            transfers the learning rate across width at a fixed batch, but the batch rule grows the batch along
            the ladder and Adam's best learning rate grows with it (about as its square root below the critical
            batch: exponent 0.5); 0 keeps one learning rate (see docs/forecast.md for the measured optimum).
        lr_base_batch_tokens: the tokens per step at which optim.lr applies unscaled by lr_batch_exponent.
        seq_len: tokens per training sequence (the same for every run, so the attention FLOPs term is comparable).
        tokens_per_param: D / N for every run, with N the matmul parameters (see docs/forecast.md): the
            allocation rule that picks each rung's depth; the target uses it too unless target.tokens is set.
        steps_per_run: optimizer steps every run aims at; the batch is the whole number of sequences nearest
            tokens / steps_per_run (within the min/max batch), so runs of every size take about as many steps.
        batch_exponent: how the batch grows with a run's tokens D: tokens per step ∝ D^exponent. 1 (default)
            gives every run steps_per_run steps; 0 a fixed batch (steps ∝ D); 2/3 grows the batch as the
            critical batch does along a fixed-tokens-per-parameter ladder (B ∝ C^0.33, C ∝ D²), steps ∝ D^(1/3).
        batch_base_tokens: with batch_exponent < 1, the run tokens at which a run takes steps_per_run steps
            (the batch is (batch_base_tokens / steps_per_run) * (D / batch_base_tokens)^batch_exponent).
        min_batch_tokens: smallest tokens per optimizer step.
        max_batch_tokens: largest tokens per optimizer step.
        dial: which size dial the ladder turns. "depth": depth sets the width (model.aspect_ratio) and heads,
            as `augury train` does. "width": every run has `model.depth` layers and the dial sets d_model (in
            steps of `width_step`, heads of model.head_dim): µP transfers hyperparameters across width, not
            depth, so a width ladder keeps every run the same kind of model (see docs/forecast.md).
        width_step: d_model granularity of the width dial (a multiple of the head dimension).
        min_width: the smallest d_model a rung may have under the width dial.
        min_depth: the smallest depth a rung may have (1-layer models behave as bigram models: avoid them).
        dtype: training dtype for every run ("fp32", "bf16" or "auto").
        eval_tokens: validation tokens each run's final loss is measured on (the same windows for every run).
        max_epochs: the most passes over the training split any run may make (1.0 = every token seen once).
    """

    model: dict = field(default_factory=dict)
    optim: dict = field(default_factory=dict)
    lr_width_exponent: float = 0.0
    lr_base_width: int = 32
    lr_batch_exponent: float = 0.0
    lr_base_batch_tokens: int = 2048
    seq_len: int = 128
    tokens_per_param: float = 4.0
    steps_per_run: int = 300
    batch_exponent: float = 1.0
    batch_base_tokens: int = 0
    dial: Literal["depth", "width"] = "depth"
    width_step: int = 16
    min_width: int = 32
    min_batch_tokens: int = 1024
    max_batch_tokens: int = 16384
    min_depth: int = 2
    dtype: Literal["fp32", "bf16", "auto"] = "fp32"
    eval_tokens: int = 65536
    max_epochs: float = 1.0


@dataclass
class TargetConfig:
    """The big run being forecast: a depth (and tokens), or a FLOP budget.

    Args:
        depth: the target's size-dial depth (depth dial); None chooses it from `flops` by the allocation rule.
        d_model: the target's width (width dial); None chooses it from `flops` by the allocation rule.
        tokens: training tokens; None uses recipe.tokens_per_param (or `flops` when set).
        flops: a training-compute budget; with depth None, depth and tokens both come from it.
    """

    depth: int | None = None
    d_model: int | None = None
    tokens: int | None = None
    flops: float | None = None


@dataclass
class LadderConfig:
    """The small runs the forecast is fitted on, spaced evenly in log compute.

    Args:
        rungs: number of rungs.
        largest_fraction: the largest rung's compute as a fraction of the target's (each preset in
            augury/forecast/presets/ sets its own: larger on CPU, where the target is small, than on GPU).
        smallest_fraction: the smallest rung's compute as a fraction of the target's; None spans 1.5 decades
            below the largest rung.
        tokens: how a rung's tokens are set. "compute": D = the rung's planned compute / FLOPs per token (compute
            exactly evenly spaced; D/N near tokens_per_param, as close as the dial's steps allow). "ratio":
            D = tokens_per_param × N exactly (the compute then follows the dial's sizes, nearly evenly spaced;
            rungs that land on the same size are merged), so every run sits at the same D/N as the target.
        seeds: training seeds per rung (seed, seed + 1000, ...); a rung's loss is their mean and its capability
            records pool their samples. The small rungs of a CPU ladder vary by 1-3% from seed to seed; averaging
            k seeds cuts that by √k for little compute (the target is trained once).
    """

    rungs: int = 5
    largest_fraction: float = 0.01
    smallest_fraction: float | None = None
    tokens: Literal["compute", "ratio"] = "compute"
    seeds: int = 1


@dataclass
class CapabilityConfig:
    """The held-out capability suite: complete a held-out line of a held-out file exactly.

    Args:
        enabled: run the capability forecast.
        problems: problems drawn from the validation split's documents (files never trained on).
        samples: samples per problem (n of the unbiased pass-rate estimator).
        temperature: sampling temperature.
        context_tokens: tokens of the file before the line, given as the prompt.
        min_target_tokens: fewest tokens of a line to complete.
        max_target_tokens: most tokens of a line to complete.
        min_answer_chars: fewest non-blank characters of a line to complete (blank lines are never problems).
        buckets: difficulty buckets (one capability fit each).
        seed: seed of problem selection and sampling.
        span: "line" (complete a whole line from its start), "span" (complete a span inside a line up to where a
            word ends: easier, so that the small rungs of a CPU ladder pass measurably often) or "copy" (such
            spans that the prompt determines: the two tokens before the span occur earlier in the prompt, always
            followed by it; one right answer, so pass rates tend to 1 with scale).
    """

    enabled: bool = True
    problems: int = 200
    samples: int = 20
    temperature: float = 1.0
    context_tokens: int = 96
    min_target_tokens: int = 2
    max_target_tokens: int = 8
    min_answer_chars: int = 4
    buckets: int = 3
    seed: int = 0
    span: Literal["line", "span", "copy"] = "line"


@dataclass
class FitConfig:
    """How the loss law is fitted and checked.

    Args:
        law: the loss law: `gpt4-loss` (L(C) = a·C^b + c) or `power-loss` (L(C) = a·C^b); see docs/forecast.md.
        compute: the laws' x axis C (loss and capability): `flops` (each run's training FLOPs, the report's
            choice) or `non-embedding` (Kaplan et al.'s C = 6·N·D with N the parameters outside the embedding
            and output layers, which make up most of a tiny rung's FLOPs and bend the curve there).
        interval: how the forecast's interval is made: `bootstrap` (resample the rungs, refit; any law) or
            `prediction` (power-loss only: the regression prediction interval of one new run, every seed replicate
            of every rung a point, Student t with N − 2 degrees of freedom; stable where a handful of rungs makes
            the bootstrap erratic) or `random-effects` (power-loss, ≥ 2 seeds per rung: the same, with each rung's
            systematic deviation from the line, measured by the lack of fit beyond the seed-to-seed scatter, as a
            random effect the target has too; Satterthwaite degrees of freedom. Wider and honest where rung means
            sit off the line by more than their seeds explain).
        bootstrap: bootstrap resamples (parameter intervals; the forecast's interval when interval=bootstrap).
        huber_delta: Huber delta on log residuals. The scaling engine's 1e-3 (Chinchilla's choice, for hundreds
            of runs) makes residuals above 0.1% count linearly, i.e. a least-absolute-deviations fit; for a handful
            of rungs with ~0.5% noise, 0.02 makes it least squares (the efficient estimator) while a rung off by
            more than 2% still counts only linearly.
        level: interval coverage.
        backtest_tolerance: the largest rung, predicted from the others, may miss by at most this relative error
            (and must lie inside its interval) for the forecast to count as reliable.
        residual_tolerance: the largest |relative residual| of any rung from the fitted curve.
        max_irreducible_fraction: flag a fit whose irreducible loss c exceeds this fraction of the largest rung's
            loss (the law then claims the ladder is at its floor).
        max_interval_halfwidth: flag a forecast whose interval's half-width exceeds this fraction of the value.
        capability_backtest_tolerance: the capability laws fitted without the largest rung may miss its mean
            −log pass rate by at most this relative error for the capability forecast to count as reliable.
        steepening_tolerance: how much the local slope d log L / d log C may steepen from one rung pair to the
            next before it counts as a regime change (a law with an irreducible term only flattens).
    """

    law: Literal["gpt4-loss", "power-loss"] = "gpt4-loss"
    compute: Literal["flops", "non-embedding"] = "flops"
    interval: Literal["bootstrap", "prediction", "random-effects"] = "bootstrap"
    bootstrap: int = 1000
    huber_delta: float = 1e-3
    level: float = 0.9
    backtest_tolerance: float = 0.02
    residual_tolerance: float = 0.015
    max_irreducible_fraction: float = 0.95
    max_interval_halfwidth: float = 0.05
    steepening_tolerance: float = 0.05
    capability_backtest_tolerance: float = 0.1


@dataclass
class ForecastConfig:
    """One forecast: ladder + pre-registration + target + verification + report.

    Args:
        name: the preset's (or your) name for this forecast.
        out: output folder (plan.json, rungs/, forecast.json, target/, result.json, report.md/.html).
        seed: training seed of every run.
        data: the corpus (the validation split's whole files also feed the capability suite).
        recipe: the training recipe all runs share.
        target: the run being forecast.
        ladder: the rungs.
        capability: the held-out capability suite.
        fit: the loss law and its checks.
        text_folder: optional folder of held-out text (e.g. WikiText-2 test files); its loss is forecast too.
        executor: "local" (rungs on this machine, `jobs` at a time) or "ray" (rungs in parallel on a Ray cluster).
        jobs: rung runs the local executor trains at once, each in its own worker process, which also samples
            the run's capability problems. On a CPU, small rungs use 2 cores poorly, so two 1-thread runs side by
            side train faster than one 2-thread run after the other (benchmarks/ladder_jobs.py measures it). 1: one
            run after another, in this process.
        target_procs: processes that train the target data-parallel under torchrun on this machine (DDP: one GPU
            each on CUDA, gloo on a CPU). Each takes the target's batch / target_procs sequences of the same
            windows: the same run up to the rounding of the gradients' sum. On a 2-core CPU, 2 one-thread
            processes train cpu-demo's target faster than one 2-thread process (benchmarks/target_procs.py). 1: here.
            On CUDA, at most one process per GPU (a larger value is lowered to the GPU count, which is logged).
        ray_address: Ray cluster address for the ray executor; None starts a local Ray instance.
        ray_cpus_per_rung: CPUs each rung asks Ray for.
        rungs_per_gpu: on GPUs, the most rungs that share one GPU. Each rung asks for the smallest fraction of a
            GPU (1, 1/2, 1/4, ... down to 1/rungs_per_gpu) that holds its estimated training memory: the ray
            executor requests it as num_gpus, the local executor (with jobs > 1) packs the rungs onto this
            machine's GPUs itself. 1: one rung per GPU.
        gpu_memory_gib: memory of one GPU for that packing; None: this machine's first GPU, else 80.
        device: "auto", "cpu" or "cuda" for every run.
        threads: torch CPU threads per run (None: torch's default, or the CPUs divided among the `jobs` workers).
            On a busy CPU, 1 avoids threads waiting on each other.
        progress: show progress bars.
    """

    name: str = "custom"
    out: str = "runs/forecast"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    ladder: LadderConfig = field(default_factory=LadderConfig)
    capability: CapabilityConfig = field(default_factory=CapabilityConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    text_folder: str | None = None
    executor: Literal["local", "ray"] = "local"
    jobs: int = 1
    target_procs: int = 1
    ray_address: str | None = None
    ray_cpus_per_rung: int = 1
    rungs_per_gpu: int = 4
    gpu_memory_gib: float | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None
    progress: bool = True


_SECTIONS = {"data": DataConfig, "recipe": RecipeConfig, "target": TargetConfig, "ladder": LadderConfig,
             "capability": CapabilityConfig, "fit": FitConfig}


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ForecastConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)} or pass --config FILE")
    return path


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("model", "optim"):
            out[k] = _merge(out[k], v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def _check_keys(raw: dict, where: str) -> None:
    """ForecastConfigError naming the first key of `raw` (nested dicts) that no config field has."""
    top = set(ForecastConfig.__dataclass_fields__)
    for key, value in raw.items():
        if key not in top:
            raise ForecastConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(top))})")
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ForecastConfigError(f"{where}: {key} must be a mapping, got {value!r}")
            known = set(_SECTIONS[key].__dataclass_fields__)
            for sub in value:
                if sub not in known:
                    raise ForecastConfigError(f"{where}: unknown key {key}.{sub} (known: {', '.join(sorted(known))})")


def _read_yaml(path: str | Path, what: str) -> dict:
    path = Path(path)
    if path.is_dir():
        raise ForecastConfigError(f"{what} {path} is a folder, not a YAML file")
    if not path.is_file():
        raise ForecastConfigError(f"{what} {path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ForecastConfigError(f"{what} {path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ForecastConfigError(f"{what} {path}: expected a mapping at the top level")
    return raw


def load_forecast_config(preset: str | None = "cpu-demo", config: str | None = None,
                         overrides: dict | None = None, argv: list[str] = (),
                         prog: str = "augury forecast") -> ForecastConfig:
    """The one way a ForecastConfig is made (`augury forecast`, `augury ladder plan` and Python callers alike):
    the preset's YAML, then a user YAML (`config`), then `overrides` (nested dicts), then command-line flags
    (`argv`: `--ladder.rungs 6`, `--config FILE`), each on top of the one before; recipe.model and recipe.optim
    merge key by key. Every key and value is checked against the dataclasses through jsonargparse (a bad one is a
    ForecastConfigError naming it), and the recipe's model and optimizer values arrive typed (a dotted flag
    `--recipe.optim.beta2 0.95` is the number 0.95)."""
    import json

    from jsonargparse import ArgumentError

    from augury.command import config_cli, one_line
    from augury.model import ModelConfig
    from augury.train.config import OptimConfig

    where = config or (f"preset {preset}" if preset else "config")
    raw: dict = (yaml.safe_load(preset_path(preset).read_text()) or {}) if preset else {}
    if config:
        raw = _merge(raw, _read_yaml(config, "--config"))
    if overrides:
        raw = _merge(raw, overrides)
    _check_keys(raw, where)
    try:
        cfg = config_cli(ForecastConfig, list(argv), prog, configs=[json.dumps(raw)], exit_on_error=False)
    except ArgumentError as err:
        raise ForecastConfigError(f"{one_line(str(err))} (options: {prog} --help)") from None
    cfg.recipe.model = typed_fields(ModelConfig, cfg.recipe.model, "recipe.model")
    cfg.recipe.optim = typed_fields(OptimConfig, cfg.recipe.optim, "recipe.optim")
    return cfg


def _takes_text(hint) -> bool:
    """Whether a field typed `hint` holds text (str, or a Literal of strings)."""
    return "str" in str(hint) or "Literal" in str(hint)


def typed_fields(cls, values: dict, where: str) -> dict:
    """`values` checked against the dataclass `cls`: an unknown key is an error naming it, and a string given
    for a non-string field (a dotted command-line override such as `--recipe.optim.beta2 0.95`) is read as
    YAML, so it arrives as the number or boolean it spells."""
    import yaml

    fields = cls.__dataclass_fields__
    bad = [k for k in values if k not in fields]
    if bad:
        raise ForecastConfigError(f"{where}: unknown key {bad[0]!r}")
    out = {}
    for k, v in values.items():
        if isinstance(v, str) and not _takes_text(fields[k].type):
            try:
                parsed = yaml.safe_load(v)
            except yaml.YAMLError:
                parsed = v
            if isinstance(parsed, str):  # still text: not the number or boolean the field needs
                raise ForecastConfigError(f"{where}.{k}: cannot read {v!r} as {fields[k].type}")
            v = parsed
        out[k] = v
    return out
