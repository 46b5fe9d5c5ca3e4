"""Ladder planning: the rungs and the target, one recipe scaled by the size dial, spaced evenly in log compute.

Compute C of a run is `flops_per_token(model, seq_len) × training tokens` (augury.model.counts: 6·N_matmul plus
the attention term), and N is the matmul parameter count (every weight a token's forward pass multiplies by,
output layer included), so C ≈ 6·N·D holds by construction. Each rung's size on the dial (its depth, or its
width under `recipe.dial: width`) is the one whose D/N at that compute is closest to `recipe.tokens_per_param`
(the allocation rule); D then follows from C exactly (or, with `ladder.tokens: ratio`, D = tokens_per_param × N).

    from augury.forecast.ladder import plan_runs, format_plan
    runs = plan_runs(cfg, vocab_size=1024)       # rungs (ascending compute) then the target
    print(format_plan(runs))
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from augury.forecast.checks import min_rungs
from augury.forecast.config import ForecastConfig, ForecastConfigError, typed_fields
from augury.forecast.fits import fit_compute
from augury.model import ModelConfig, flops_per_token, param_counts
from augury.scaling.limits import MAX_EXTRAPOLATION_DECADES
from augury.train import TrainConfig
from augury.train.config import OptimConfig

MIN_STEPS = 30          # fewer optimizer steps than this is not a trained model, whatever the compute
MAX_DIAL_DEPTH = 96     # deepest model the allocation rule considers (depth dial)
MAX_DIAL_WIDTH = 16384  # widest model the allocation rule considers (width dial)


@dataclass
class RunPlan:
    """One planned run (a rung or the target)."""

    name: str
    role: str            # "rung" or "target"
    depth: int
    d_model: int
    n_heads: int
    params_matmul: int   # N: weights used in a matmul per token (incl. the output layer)
    params_non_embedding: int
    params_total: int
    tokens: int          # D: training tokens (whole steps)
    flops: float         # C = flops_per_token × D
    batch_size: int
    steps: int
    fraction: float      # C / C_target

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.params_matmul


def model_config(cfg: ForecastConfig, size: int, vocab_size: int) -> ModelConfig:
    """The recipe's model at one dial setting: `size` is a depth (depth dial) or a d_model (width dial)."""
    model = typed_fields(ModelConfig, cfg.recipe.model, "recipe.model")
    kw = {k: v for k, v in model.items() if k not in ("depth", "vocab_size", "d_model")}
    if cfg.recipe.dial == "width":
        kw.update(depth=model["depth"], d_model=size)
    else:
        kw.update(depth=size)
    try:
        return ModelConfig(**kw, vocab_size=vocab_size).resolved()
    except ValueError as err:
        raise ForecastConfigError(f"recipe.model at {cfg.recipe.dial} {size}: {err}") from None


def dial_sizes(cfg: ForecastConfig):
    """The dial's settings, smallest first: depths (depth dial) or d_model values (width dial)."""
    rec = cfg.recipe
    if rec.dial == "width":
        return range(rec.min_width, MAX_DIAL_WIDTH + 1, rec.width_step)
    return range(rec.min_depth, MAX_DIAL_DEPTH + 1)


def _size_of(cfg: ForecastConfig, run: RunPlan) -> int:
    return run.d_model if cfg.recipe.dial == "width" else run.depth


def run_model_config(cfg: ForecastConfig, run: RunPlan, vocab_size: int) -> ModelConfig:
    """The ModelConfig a planned run trains."""
    return model_config(cfg, _size_of(cfg, run), vocab_size)


def _shape(cfg: ForecastConfig, size: int, vocab_size: int):
    m = model_config(cfg, size, vocab_size)
    return m, param_counts(m), flops_per_token(m, cfg.recipe.seq_len)


def choose_size(cfg: ForecastConfig, flops: float, vocab_size: int) -> int:
    """The dial setting whose D/N at `flops` is closest (in log) to recipe.tokens_per_param."""
    r = cfg.recipe.tokens_per_param
    sizes = dial_sizes(cfg)
    best, best_err = sizes[0], math.inf
    for size in sizes:
        _, counts, fpt = _shape(cfg, size, vocab_size)
        err = abs(math.log(flops / fpt / counts.matmul / r))
        if err < best_err:
            best, best_err = size, err
        elif flops / fpt / counts.matmul < r:  # ratios only fall with size: past the best
            break
    return best


def _size_at_ratio(cfg: ForecastConfig, flops: float, cap: float, vocab_size: int) -> int | None:
    """The dial setting whose compute at D = tokens_per_param × N is closest (in log) to `flops`, never above `cap`
    (None when even the smallest is above it)."""
    r, best, best_err = cfg.recipe.tokens_per_param, None, math.inf
    for size in dial_sizes(cfg):
        _, counts, fpt = _shape(cfg, size, vocab_size)
        c = fpt * r * counts.matmul
        if c > cap * (1 + 1e-9):
            break
        err = abs(math.log(c / flops))
        if err < best_err:
            best, best_err = size, err
    return best


def _batch_tokens(cfg: ForecastConfig, tokens: float) -> int:
    """Tokens per optimizer step: the whole number of sequences nearest tokens / steps_per_run, clamped to
    [min_batch_tokens, max_batch_tokens]. Every run then takes about steps_per_run steps (its schedule, warmup
    and number of updates are the same at every size) unless a clamp binds; a power-of-two rule would make the
    step count jump by up to 2x between neighbouring rungs, and at these sizes the loss follows the step count.
    With recipe.batch_exponent < 1 the batch grows more slowly than D, and the step count with it."""
    rec = cfg.recipe
    ideal = tokens / rec.steps_per_run
    if rec.batch_exponent < 1:  # batch ∝ D^exponent through (batch_base_tokens, batch_base_tokens / steps_per_run)
        base = rec.batch_base_tokens
        ideal = base / rec.steps_per_run * (tokens / base) ** rec.batch_exponent
    seqs = max(1, round(ideal / rec.seq_len))
    lo = max(1, math.ceil(rec.min_batch_tokens / rec.seq_len))
    hi = max(lo, rec.max_batch_tokens // rec.seq_len)
    return min(max(seqs, lo), hi) * rec.seq_len


def _plan_one(cfg, name, role, size, tokens, vocab_size, target_flops) -> RunPlan:
    m, counts, fpt = _shape(cfg, size, vocab_size)
    tps = _batch_tokens(cfg, tokens)
    steps = max(1, math.ceil(tokens / tps))
    real_tokens = steps * tps
    flops = float(fpt * real_tokens)
    return RunPlan(name, role, m.depth, m.d_model, m.n_heads, counts.matmul, counts.non_embedding, counts.total,
                   real_tokens, flops, tps // cfg.recipe.seq_len, steps,
                   flops / target_flops if target_flops else 1.0)


def plan_target(cfg: ForecastConfig, vocab_size: int) -> RunPlan:
    t = cfg.target
    size = t.d_model if cfg.recipe.dial == "width" else t.depth
    if size is None:
        size = choose_size(cfg, t.flops, vocab_size)
    _, counts, fpt = _shape(cfg, size, vocab_size)
    if t.tokens is not None:
        tokens = t.tokens
    elif t.flops is not None:
        tokens = t.flops / fpt
    else:
        tokens = cfg.recipe.tokens_per_param * counts.matmul
    run = _plan_one(cfg, "target", "target", size, tokens, vocab_size, None)
    return dataclasses.replace(run, fraction=1.0)


def plan_runs(cfg: ForecastConfig, vocab_size: int) -> list[RunPlan]:
    """The rungs (ascending compute) followed by the target; ForecastConfigError if the ladder cannot work."""
    target = plan_target(cfg, vocab_size)
    lad, rec = cfg.ladder, cfg.recipe
    largest = lad.largest_fraction
    smallest = lad.smallest_fraction if lad.smallest_fraction is not None else largest / 10 ** 1.5
    fractions = np.geomspace(smallest, largest, lad.rungs)
    runs: list[RunPlan] = []
    for i, frac in enumerate(fractions):
        c = float(frac * target.flops)
        if lad.tokens == "ratio":
            size = _size_at_ratio(cfg, c, largest * target.flops, vocab_size)
            if size is None:
                m, counts, fpt = _shape(cfg, dial_sizes(cfg)[0], vocab_size)
                need = fpt * rec.tokens_per_param * counts.matmul
                raise ForecastConfigError(
                    f"the target's compute ({target.flops:.3g} FLOPs) is too small for the smallest sensible rung: "
                    f"the smallest allowed model (depth {m.depth}, d_model {m.d_model}, {counts.matmul:,} params) "
                    f"trained on {rec.tokens_per_param:g} tokens/param needs {need:.3g} FLOPs, more than "
                    f"ladder.largest_fraction={largest:g} of the target. Raise the target or lower recipe.min_width")
        else:
            size = choose_size(cfg, c, vocab_size)
        m, counts, fpt = _shape(cfg, size, vocab_size)
        if lad.tokens == "ratio":
            if runs and (runs[-1].depth, runs[-1].d_model) == (m.depth, m.d_model):
                continue  # the same model at the same D/N: one rung
            tokens = rec.tokens_per_param * counts.matmul
        else:
            tokens = c / fpt
        ratio = tokens / counts.matmul
        if ratio < rec.tokens_per_param / 4 or tokens < MIN_STEPS * rec.min_batch_tokens:
            raise ForecastConfigError(
                f"the target's compute ({target.flops:.3g} FLOPs) is too small for the smallest sensible rung: "
                f"rung {i + 1} at {c:.3g} FLOPs would train the smallest allowed model (depth {m.depth}, d_model "
                f"{m.d_model}, {counts.matmul:,} params) on {tokens:,.0f} tokens ({ratio:.2g} tokens/param, need >= "
                f"{rec.tokens_per_param / 4:g} and >= {MIN_STEPS * rec.min_batch_tokens:,} tokens). Raise the target, "
                f"raise ladder.smallest_fraction or lower recipe.min_depth / min_width / min_batch_tokens")
        runs.append(_plan_one(cfg, f"rung{len(runs) + 1}", "rung", size, tokens, vocab_size, target.flops))
    need = min_rungs(cfg.fit.law)
    if len(runs) < need:
        raise ForecastConfigError(f"only {len(runs)} distinct rung sizes fit between ladder.smallest_fraction and "
                                  f"largest_fraction ({need} needed for fit.law {cfg.fit.law!r}): widen the range or "
                                  f"use a finer dial (recipe.width_step)")
    if runs[-1].flops >= target.flops:
        raise ForecastConfigError(f"the target ({target.flops:.3g} FLOPs) is not larger than the ladder's largest "
                                  f"rung ({runs[-1].flops:.3g} FLOPs)")
    reach = math.log10(fit_compute(target, cfg.fit.compute) / fit_compute(runs[-1], cfg.fit.compute))
    if reach > MAX_EXTRAPOLATION_DECADES:
        raise ForecastConfigError(f"the target lies {reach:.1f} decades of compute ({cfg.fit.compute}) beyond the "
                                  f"largest rung, more than the {MAX_EXTRAPOLATION_DECADES:g} a forecast may reach "
                                  f"(docs/scaling.md): raise ladder.largest_fraction")
    return runs + [target]


def rung_replicas(cfg: ForecastConfig, rungs: list[RunPlan]) -> list[tuple[RunPlan, str, int]]:
    """(the run to train, its rung's name, replica index) for `ladder.seeds` seeds per rung; replica 0 keeps the
    rung's own name, replica j is named `<rung>-seed<j>`."""
    return [(rung if j == 0 else dataclasses.replace(rung, name=f"{rung.name}-seed{j}"), rung.name, j)
            for rung in rungs for j in range(cfg.ladder.seeds)]


def check_runs_fit(cfg: ForecastConfig, runs: list[RunPlan], train_tokens: int, target_procs: int) -> None:
    """ForecastConfigError when a planned run would repeat the training split more than `recipe.max_epochs` times,
    or when `target_procs` processes cannot share the target's batch evenly."""
    for r in runs:
        epochs = r.tokens / train_tokens
        if epochs > cfg.recipe.max_epochs:
            raise ForecastConfigError(
                f"{r.name} would train on {r.tokens:,} tokens = {epochs:.2f} passes over the {train_tokens:,}-token "
                f"training split (recipe.max_epochs={cfg.recipe.max_epochs:g}): repeated data bends the curve; use "
                f"a larger corpus, a smaller target or raise recipe.max_epochs")
    if runs[-1].batch_size % target_procs:
        raise ForecastConfigError(f"target_procs={target_procs} does not divide the target's batch of "
                                  f"{runs[-1].batch_size} sequences; choose a divisor of it (or 1)")


def check_runs_train(cfg: ForecastConfig, runs: list[RunPlan], vocab_size: int) -> None:
    """ForecastConfigError when the trainer would refuse a planned run's settings (augury.train's check_config: a
    learning rate, a warmup, a seq_len beyond the model's max_seq_len) or the capability suite's prompt and answer
    do not fit the model's positions: said before the first rung trains, not by a run or after the ladder."""
    from augury.forecast.capability import max_new_tokens
    from augury.train.config import check_config

    for run in runs:
        tcfg = train_config(cfg, run, "", vocab_size)
        try:
            check_config(tcfg)
        except ValueError as err:  # TrainConfigError, ModelConfigError
            raise ForecastConfigError(f"the recipe cannot train {run.name}: {err}") from None
    cap, limit = cfg.capability, run_model_config(cfg, runs[-1], vocab_size).max_seq_len
    need = cap.context_tokens + max_new_tokens(cap)
    if cap.enabled and need > limit:
        raise ForecastConfigError(
            f"capability.context_tokens={cap.context_tokens} plus max_target_tokens={cap.max_target_tokens} (and "
            f"{max_new_tokens(cap) - cap.max_target_tokens} tokens of slack) need {need} positions, which exceed "
            f"recipe.model.max_seq_len={limit}: shorten the context or raise max_seq_len")


def target_processes(cfg: ForecastConfig, log=print) -> int:
    """How many processes train the target: `target_procs`, but at most one per GPU when the runs use CUDA (a
    CPU-oriented preset such as cpu-demo then still runs on a one-GPU machine)."""
    procs = cfg.target_procs
    if procs > 1 and cfg.device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available() and procs > torch.cuda.device_count():
            procs = torch.cuda.device_count()
            log(f"target_procs={cfg.target_procs} lowered to {procs}: one process per GPU on this machine")
    return procs


def train_config(cfg: ForecastConfig, run: RunPlan, out_dir: str, vocab_size: int, replica: int = 0) -> TrainConfig:
    """The TrainConfig of one planned run: the shared recipe at the run's depth, tokens and batch; a rung's
    replica j (see rung_replicas) trains with seed + 1000·j."""
    optim_values = typed_fields(OptimConfig, cfg.recipe.optim, "recipe.optim")
    rec = cfg.recipe
    # one validation batch shape for every run: every run is scored on exactly the same eval_tokens windows
    eval_batch = max(1, min(16, rec.eval_tokens // rec.seq_len))
    eval_batches = max(1, rec.eval_tokens // (eval_batch * rec.seq_len))
    optim = OptimConfig(**optim_values)
    if rec.lr_width_exponent:
        from augury.train import default_lr

        base = optim.lr if optim.lr is not None else default_lr(run_model_config(cfg, run, vocab_size))
        optim.lr = base * (run.d_model / rec.lr_base_width) ** (-rec.lr_width_exponent)
    if rec.lr_batch_exponent:  # validate() made sure optim.lr is set
        optim.lr *= (run.batch_size * rec.seq_len / rec.lr_base_batch_tokens) ** rec.lr_batch_exponent
    return TrainConfig(
        out=out_dir, model=run_model_config(cfg, run, vocab_size), data=dataclasses.replace(cfg.data),
        optim=optim, seq_len=rec.seq_len, batch_size=run.batch_size, steps=run.steps,
        seed=cfg.seed + 1000 * replica, dtype=rec.dtype, device=cfg.device, eval_every=0, eval_batches=eval_batches,
        eval_batch_size=eval_batch,
        ckpt_every=max(1, run.steps // 10) if run.role == "target" else 0, keep_last=1,
        log_every=max(1, run.steps // 50), progress=cfg.progress)


def probe_throughput(cfg: ForecastConfig, runs: list[RunPlan], vocab_size: int, seconds: float = 1.0) -> dict:
    """Measured training tokens/s of each distinct run shape (random tokens, a few real optimizer steps)."""
    import torch

    from augury.model import Transformer
    from augury.train.runtime import setup_runtime

    rt = setup_runtime(cfg.device, cfg.recipe.dtype)
    rates: dict[tuple, float] = {}
    for run in runs:
        key = (run.depth, run.d_model, run.batch_size)
        if key in rates:
            continue
        m = run_model_config(cfg, run, vocab_size)
        model = Transformer(m).to(rt.device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randint(0, vocab_size, (run.batch_size, cfg.recipe.seq_len), device=rt.device)
        n, start = 0, None
        while True:
            with rt.autocast():
                loss = model(x, targets=x)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if rt.device.type == "cuda":
                torch.cuda.synchronize()
            if start is None:           # the first step warms up kernels and allocations: not timed
                start = time.perf_counter()
                continue
            n += 1
            if n >= 2 and time.perf_counter() - start > seconds:
                break
        rates[key] = n * run.batch_size * cfg.recipe.seq_len / max(time.perf_counter() - start, 1e-9)
    return {run.name: rates[(run.depth, run.d_model, run.batch_size)] for run in runs}


def learning_rates(cfg: ForecastConfig, runs: list[RunPlan], vocab_size: int) -> dict[str, float]:
    """{run name: peak learning rate} as the recipe's lr rules set it for each run."""
    return {r.name: train_config(cfg, r, "", vocab_size).optim.lr for r in runs}


def format_plan(runs: list[RunPlan], tokens_per_s: dict | None = None, lrs: dict | None = None,
                asked: int | None = None) -> str:
    """The plan as a table; `asked` (ladder.rungs) says how many rungs were merged when fewer were planned."""
    head = f"{'run':<8} {'depth':>5} {'d_model':>7} {'N (matmul)':>11} {'non-emb':>10} {'tokens':>11} " \
           f"{'D/N':>6} {'batch':>5} {'steps':>6} {'FLOPs':>9} {'C/C_t':>8}"
    if lrs:
        head += f" {'lr':>8}"
    if tokens_per_s:
        head += f" {'tok/s':>8} {'est. time':>9}"
    lines = [head, "-" * len(head)]
    total = 0.0
    for r in runs:
        line = (f"{r.name:<8} {r.depth:>5} {r.d_model:>7} {r.params_matmul:>11,} {r.params_non_embedding:>10,} "
                f"{r.tokens:>11,} {r.tokens_per_param:>6.2f} {r.batch_size:>5} {r.steps:>6} "
                f"{r.flops:>9.3g} {r.fraction:>8.2g}")
        if lrs:
            line += f" {lrs[r.name]:>8.3g}"
        if tokens_per_s:
            sec = r.tokens / tokens_per_s[r.name]
            total += sec
            line += f" {tokens_per_s[r.name]:>8,.0f} {format_seconds(sec):>9}"
        lines.append(line)
    rungs = [r for r in runs if r.role == "rung"]
    if rungs:
        lines.append(f"ladder: {len(rungs)} rungs from {rungs[0].fraction:.2g} to {rungs[-1].fraction:.2g} of the "
                     f"target's compute (largest rung = 1/{1 / rungs[-1].fraction:.0f})")
        if asked and asked > len(rungs):
            lines.append(f"{asked - len(rungs)} of the {asked} rungs asked for (ladder.rungs) merged into a neighbour: "
                         f"with ladder.tokens 'ratio' they landed on the same model size (recipe.dial "
                         f"steps); lower ladder.smallest_fraction or ask for fewer rungs")
    if tokens_per_s:
        lines.append(f"estimated training time: {format_seconds(total)} (from a short throughput probe; "
                     f"evaluation and capability sampling come on top)")
    return "\n".join(lines)


def format_seconds(sec: float) -> str:
    sec = max(0, round(sec))
    if sec >= 3600:
        return f"{sec // 3600}h{sec % 3600 // 60:02d}m"
    if sec >= 60:
        return f"{sec // 60}m{sec % 60:02d}s"
    return f"{sec}s"
