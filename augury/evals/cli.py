"""`augury eval`: evaluate a model on benchmark tasks and write lm-evaluation-harness-shaped results.

    augury eval --model hf:/models/llama-tiny --tasks mmlu,truthfulqa_mc2 --data_dir data/ --out results/
    augury eval --model openai:gpt-4o-mini@https://api.example.com/v1 --model_args api_key_env=MY_KEY ...
    augury eval --list_tasks
    augury eval --model augury:runs/vision-cpu-s0 --tasks image_digits,image_charts,image_words --out results/

Inputs are checked before the model is loaded: an unknown task, a missing data file or a malformed record is one
clear error (exit 2). Flags are spelled with underscores (`--data_dir`); the hyphenated spelling
(`--data-dir`) is accepted as an alias. Finished samples are kept in OUT/.partial/; rerunning the same command
resumes there.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from augury.command import underscore_flags
from augury.errors import UsageError


def _parser():
    from jsonargparse import ActionConfigFile, ArgumentParser

    p = ArgumentParser(prog="augury eval", description=__doc__.split("\n")[0])
    p.add_argument("--config", action=ActionConfigFile, help="a YAML file with any of these options")
    p.add_argument("--model", type=str, default=None,
                   help="hf:PATH (local Hugging Face folder), openai:MODEL@BASE_URL, augury:RUN_DIR")
    p.add_argument("--model_args", type=str, default="",
                   help="backend options as key=value,... (e.g. batch_size=8,dtype=bfloat16)")
    p.add_argument("--tasks", type=str, default=None, help="comma-separated task or group names")
    p.add_argument("--data_dir", type=str, default=None, help="folder the task data paths are relative to")
    p.add_argument("--out", type=str, default=None, help="output folder (results, samples, plots)")
    p.add_argument("--limit", type=int | None, default=None, help="evaluate only the first N records per task")
    p.add_argument("--num_fewshot", type=int | None, default=None, help="override each task's k-shot count")
    p.add_argument("--chat", type=bool, default=False, help="format prompts with the model's chat template")
    p.add_argument("--include_path", type=str, default="", help="extra folders of task YAML files (comma-separated)")
    p.add_argument("--chunk_size", type=int, default=64, help="samples scored (and saved) per step")
    p.add_argument("--list_tasks", type=bool, default=False, help="print the known tasks and groups and exit")
    p.add_argument("--grader", type=str, default="",
                   help="graded tasks: the grader (offline, offline:PATH, rules, openai:MODEL@URL, augury:RUN, "
                        "hf:PATH); default: each task's")
    p.add_argument("--grader_model_args", type=str, default="", help="graded tasks: a judge's backend options")
    return p


def _fix_bool_flags(argv: list[str]) -> list[str]:
    """Hyphenated flags become their underscore spelling; a bare `--chat` / `--list_tasks` means true."""
    argv = underscore_flags(argv)
    fixed: list[str] = []
    for i, arg in enumerate(argv):
        fixed.append(arg)
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg in ("--chat", "--list_tasks") and (nxt is None or nxt.startswith("--")):
            fixed.append("true")
    return fixed


def parse_args(argv: list[str]):
    """The options of `augury eval` from its command line (hyphenated spellings accepted as aliases)."""
    return _parser().parse_args(_fix_bool_flags(argv))


def main(argv: list[str] | None = None) -> int:
    from augury.evals.backends import load_model, parse_model_args
    from augury.evals.data import TaskDataError
    from augury.evals.prompts import build_instances
    from augury.evals.results import build_results, markdown_table, write_outputs
    from augury.evals.runner import evaluate
    from augury.evals.taskconfig import TaskConfigError, TaskRegistry

    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        registry = TaskRegistry.load([p for p in args.include_path.split(",") if p.strip()])
    except TaskConfigError as err:
        raise UsageError(str(err)) from None
    if args.list_tasks:
        for name in registry.names():
            kind = registry.tasks[name].kind if name in registry.tasks else "group"
            print(f"{name}\t{kind}")
        return 0
    names = [t.strip() for t in (args.tasks or "").split(",") if t.strip()]
    from augury.evals.image_eval import is_image_task, run_image_eval

    if names and all(is_image_task(t) for t in names):
        try:
            model_args = parse_model_args(args.model_args)
        except ValueError as err:
            raise UsageError(str(err)) from None
        return run_image_eval(args, names, model_args)
    if any(is_image_task(t) for t in names):
        raise UsageError("image tasks (image_*, image:FILE) run on their own: pass them without text tasks")
    for flag in ("model", "tasks", "data_dir", "out"):
        if not getattr(args, flag):
            raise UsageError(f"--{flag.replace('_', '-')} is required")
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be >= 1")
    if args.num_fewshot is not None and args.num_fewshot < 0:
        raise UsageError("--num-fewshot must be >= 0")
    if not Path(args.data_dir).is_dir():
        raise UsageError(f"--data_dir {args.data_dir!r} is not a folder")
    try:
        configs = registry.resolve([t.strip() for t in args.tasks.split(",") if t.strip()])
        if args.grader or args.grader_model_args:
            configs = [dataclasses.replace(c, grader=args.grader or c.grader,
                                           grader_model_args=args.grader_model_args) if c.kind == "graded" else c
                       for c in configs]
        # Read and render every record now, so bad data is reported before the model is loaded.
        instances = {c.task: build_instances(c, args.data_dir, args.num_fewshot, args.limit) for c in configs}
        for c in configs:
            if c.kind == "graded":
                from augury.evals.graded import plugin

                plugin(c.kind).check_instances(c, instances[c.task])
    except (TaskConfigError, TaskDataError) as err:
        raise UsageError(str(err)) from None
    try:
        model_kwargs = parse_model_args(args.model_args)
        lm = load_model(args.model, **model_kwargs)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.chat:
        try:
            lm.apply_chat_template([{"role": "user", "content": "x"}])
        except (NotImplementedError, ValueError) as err:
            raise UsageError(str(err)) from None
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    date = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(started))
    from augury.evals.backends.errors import EndpointError

    try:
        scored = evaluate(lm, configs, args.data_dir, out_dir, args.model, args.num_fewshot, args.limit,
                          args.chat, chunk_size=args.chunk_size, instances=instances)
    except EndpointError as err:
        print(f"augury eval: error: {err}\n  finished samples are kept in {out_dir / '.partial'}; rerun the "
              "same command to resume", file=sys.stderr)
        return 1
    model_config = {**lm.config(), "model_spec": args.model}
    results = build_results(configs, scored, registry, model_config, args.num_fewshot, args.limit,
                            args.chat, started, out_dir, date)
    path = write_outputs(results, scored, out_dir, date)
    print(markdown_table(results))
    if results.get("safety"):
        from augury.evals.graded import report_form, summary_table

        print("\n" + summary_table(results["safety"]))
        print("\n" + "\n".join(report_form(results["safety"])))
    errors = sum(s["errors"] for s in scored.values())
    print(f"\nwrote {path}" + (f"\n{errors} sample(s) failed on the endpoint and are counted as errors; rerun "
                              "the same command to retry only those" if errors else ""))
    return 0
