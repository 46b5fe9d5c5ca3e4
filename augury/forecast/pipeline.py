"""The forecast pipeline: plan → train the rungs → pre-register → train the target → verify → report.

    from augury.forecast.config import load_forecast_config
    from augury.forecast.pipeline import run_forecast
    result = run_forecast(load_forecast_config("smoke", overrides={"out": "runs/f"}))

Every step is resumable: finished runs are never retrained, capability records and the pre-registered
forecast.json are reused (forecast.json is verified against its sha256 and the one plan.json recorded at
registration, never refitted), and the target starts only after forecast.json exists. A resume on prepared data
other than the data plan.json records is refused before anything trains. The steps live in their own modules:

    folder.py       the output folder and its plan.json (folder.py's docstring has the layout)
    ladder.py       the runs to train (rungs and target) and their TrainConfigs
    training.py     training them (runner.py, torchrun.py: the executors; progress.py: the progress line)
    preregister.py  forecast.json (fits.py: the loss law and its checks; crossfit.py: the capability forecast)
    verify.py       result.json, the target against the forecast
    report.py       report.md / report.html
    records.py      the typed Forecast and Result records and their JSON files
"""

from __future__ import annotations

import time
from pathlib import Path

from augury.forecast.checks import check_device, validate
from augury.forecast.config import ForecastConfig
from augury.forecast.crossfit import capability_problems, write_problems
from augury.forecast.folder import check_out_dir, check_plan, check_trained_runs, write_plan
from augury.forecast.heldout_text import check_text_folder
from augury.forecast.ladder import (
    check_runs_fit,
    check_runs_train,
    format_plan,
    learning_rates,
    plan_runs,
    target_processes,
    train_config,
)
from augury.forecast.preregister import preregister
from augury.forecast.progress import Progress
from augury.forecast.records import Result, write_result
from augury.forecast.training import probe_unfinished, rung_jobs, train_rungs, train_target
from augury.forecast.verify import summary_text, verify_forecast


def run_forecast(cfg: ForecastConfig, log=print) -> Result:
    """Run (or resume) a whole forecast; returns result.json's record. Errors in the input raise
    ForecastConfigError before any training starts."""
    from augury.data import prepare_data

    t0 = time.perf_counter()
    validate(cfg)
    check_device(cfg)
    out = Path(cfg.out)
    check_out_dir(out)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)

    # ---- the plan: every check that needs no training, before any training ----------------------------------
    data = prepare_data(cfg.data, log=log)
    vocab = data.tokenizer().get_vocab_size()
    runs = plan_runs(cfg, vocab)
    train_tokens = data.split_tokens("train")
    check_plan(cfg, out, runs, data, train_tokens)  # first: a resume on changed data says so, nothing else
    procs = target_processes(cfg, log)
    check_runs_fit(cfg, runs, train_tokens, procs)
    check_runs_train(cfg, runs, vocab)
    check_trained_runs(cfg, out, runs, vocab)  # the runs already there: the same precision and settings
    # a suite too small is a bad input: fail before any training, and before plan.json would tie --out to it
    problems = capability_problems(cfg, out, data, write=False) if cfg.capability.enabled else None
    if cfg.text_folder:
        check_text_folder(cfg, data)
    write_plan(cfg, out, runs, vocab, data, train_tokens)
    if problems is not None:
        write_problems(out, problems)
    log(format_plan(runs, lrs=learning_rates(cfg, runs, vocab), asked=cfg.ladder.rungs))
    timings = {"data and plan": time.perf_counter() - t0}

    rungs, target = runs[:-1], runs[-1]
    jobs = rung_jobs(cfg, out, rungs, vocab)
    tcfg = train_config(cfg, target, str(out / "target"), vocab)
    progress = Progress([plan for plan, _ in jobs] + [target], cfg.progress, log,
                        probe_unfinished(cfg, jobs + [(target, tcfg)], vocab))
    try:
        # ---- the rungs, then the forecast fitted on them alone --------------------------------------------------
        t = time.perf_counter()
        summaries = train_rungs(cfg, out, rungs, jobs, progress, problems)
        timings["ladder training"] = sum(s.get("seconds") or 0 for ss in summaries.values() for s in ss)
        if cfg.executor == "local" and cfg.jobs > 1:
            timings["ladder training and capability sampling, wall"] = time.perf_counter() - t
        t = time.perf_counter()
        forecast = preregister(cfg, out, data, rungs, target, summaries, log)
        timings["rung evaluation and fit"] = time.perf_counter() - t
        # ---- the target: only now, after forecast.json exists ---------------------------------------------------
        tsum = train_target(cfg, target, tcfg, procs, progress, number=len(jobs) + 1, log=log)
    except KeyboardInterrupt:
        progress.close()
        log(f"\ninterrupted: {out} keeps every finished run, the last checkpoint of the interrupted one and any "
            f"registered forecast. Resume with:\n  augury forecast --config {out}/config.yaml")
        raise
    except BaseException:
        progress.close()  # ends the bar's line, so the error is not printed on the end of it
        raise
    progress.close()
    timings["target training"] = tsum.get("seconds") or 0

    # ---- verification and report ------------------------------------------------------------------------------
    t = time.perf_counter()
    result = verify_forecast(cfg, out, data, forecast, target, tsum)
    timings["target evaluation"] = time.perf_counter() - t
    timings["this invocation (wall)"] = time.perf_counter() - t0
    result.timings = timings
    result.target_failed_launches = tsum.get("failed_launches") or None  # relaunched processes: said, not hidden
    write_result(out / "result.json", result)
    from augury.forecast.report import write_report

    _, html_path = write_report(out, forecast, result)
    log(summary_text(forecast, result) + f"\nreport: {html_path}")
    return result
