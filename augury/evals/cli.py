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

from augury.errors import UsageError
from augury.evals.fewshot import FEWSHOT_SEED
from augury.io import not_a_folder


@dataclasses.dataclass
class EvalOptions:
    """The options of `augury eval`.

    Args:
        model: hf:PATH (local Hugging Face folder), openai:MODEL@BASE_URL, augury:RUN_DIR
        model_args: backend options as key=value,... (e.g. batch_size=8,dtype=bfloat16)
        tasks: comma-separated task or group names
        data_dir: folder the task data paths are relative to
        out: output folder (results, samples, plots)
        limit: evaluate only the first N records per task
        num_fewshot: override each task's k-shot count
        chat: format prompts with the model's chat template
        include_path: extra folders of task YAML files (comma-separated)
        chunk_size: samples scored (and saved) per step
        list_tasks: print the known tasks and groups and exit
        grader: graded tasks: the grader (offline, offline:PATH, rules, openai:MODEL@URL, augury:RUN, hf:PATH);
            default: each task's
        grader_model_args: graded tasks: a judge's backend options
        fewshot_seed: seed of the few-shot sampler (lm-eval's fewshot_random_seed; its default 1234)
    """

    model: str | None = None
    model_args: str = ""
    tasks: str | None = None
    data_dir: str | None = None
    out: str | None = None
    limit: int | None = None
    num_fewshot: int | None = None
    chat: bool = False
    include_path: str = ""
    chunk_size: int = 64
    list_tasks: bool = False
    grader: str = ""
    grader_model_args: str = ""
    fewshot_seed: int = FEWSHOT_SEED

    def validate(self) -> None:
        """Range checks that need no files (UsageError naming the option)."""
        if self.limit is not None and self.limit < 1:
            raise UsageError("--limit must be >= 1")
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise UsageError("--num_fewshot must be >= 0")
        if self.fewshot_seed < 0:  # random.Random seeds with |seed|: -7 would draw what 7 draws
            raise UsageError("--fewshot_seed must be >= 0")
        if self.chunk_size < 1:
            raise UsageError("--chunk_size must be >= 1")


def parse_args(argv: list[str]) -> EvalOptions:
    """The options of `augury eval` from its command line (`--config FILE.yaml` accepted; hyphenated spellings are
    aliases; a bare `--chat` / `--list_tasks` means true)."""
    from augury.command import config_cli

    return config_cli(EvalOptions, argv, prog="augury eval", description=__doc__.split("\n")[0])


def main(argv: list[str] | None = None) -> int:
    from augury.data.records import TaskDataError
    from augury.evals.backends import load_model, parse_model_args
    from augury.evals.partial import ResumeError
    from augury.evals.prompts import build_instances
    from augury.evals.results import build_results, markdown_table, write_outputs
    from augury.evals.runner import check_choices_scorable, evaluate
    from augury.evals.taskconfig import TaskConfigError, TaskRegistry

    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    args.validate()
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
            raise UsageError(f"--{flag} is required")
    if not Path(args.data_dir).is_dir():
        raise UsageError(f"--data_dir {args.data_dir!r} is not a folder")
    if why := not_a_folder(args.out):
        raise UsageError(f"--out {why}")
    try:
        configs = registry.resolve([t.strip() for t in args.tasks.split(",") if t.strip()])
        if args.grader or args.grader_model_args:
            configs = [dataclasses.replace(c, grader=args.grader or c.grader,
                                           grader_model_args=args.grader_model_args) if c.kind == "graded" else c
                       for c in configs]
        # Read and render every record now, so bad data is reported before the model is loaded.
        instances = {c.task: build_instances(c, args.data_dir, args.num_fewshot, args.limit,
                                               fewshot_seed=args.fewshot_seed) for c in configs}
        for c in configs:
            check_choices_scorable(c, instances[c.task], args.chat)
            if c.kind == "graded":
                from augury.evals.graded import plugin

                plugin(c.kind).check_instances(c, instances[c.task])
    except (TaskConfigError, TaskDataError) as err:
        raise UsageError(str(err)) from None
    if any(c.kind == "code" for c in configs):
        # The sandbox mode (a forced $AUGURY_SANDBOX_MODE may be mistyped or unusable here) is settled now, not
        # after the model has loaded and generated the first chunk's completions.
        from augury.evals.sandbox import sandbox_mode

        try:
            sandbox_mode()
        except (ValueError, RuntimeError) as err:
            raise UsageError(str(err).splitlines()[0]) from None
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
    before = _snapshot(out_dir)
    started = time.time()
    date = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(started))
    from augury.evals.backends.errors import EndpointError

    try:
        scored = evaluate(lm, configs, args.data_dir, out_dir, args.model, args.num_fewshot, args.limit,
                          args.chat, chunk_size=args.chunk_size, instances=instances,
                          fewshot_seed=args.fewshot_seed)
    except EndpointError as err:
        _remove_empty_new(out_dir, before)
        kept = (f"\n  finished samples are kept in {out_dir / '.partial'}; rerun the same command to resume"
                if (out_dir / ".partial").is_dir() else "")
        print(f"augury eval: error: {err}{kept}", file=sys.stderr)
        return 1
    except ResumeError as err:
        _remove_empty_new(out_dir, before)
        raise UsageError(str(err)) from None
    except BaseException:
        _remove_empty_new(out_dir, before)
        raise
    model_config = {**lm.config(), "model_spec": args.model}
    results = build_results(configs, scored, registry, model_config, args.num_fewshot, args.limit,
                            args.chat, started, out_dir, date, fewshot_seed=args.fewshot_seed)
    path = write_outputs(results, scored, out_dir, date)
    print(markdown_table(results))
    if results.get("safety"):
        from augury.evals.graded import report_form, summary_table

        print("\n" + summary_table(results["safety"]))
        print("\n" + "\n".join(report_form(results["safety"])))
    print(f"\nwrote {path}" + _errors_line(scored))
    return 0


def _errors_line(scored: dict) -> str:
    """The closing line about failed samples, each kind of failure named with its count ("" when none failed)."""
    from augury.evals.runner import ERROR_KINDS

    errors = sum(s["errors"] for s in scored.values())
    if not errors:
        return ""
    kinds: dict[str, int] = {}
    for s in scored.values():
        for kind, n in s.get("error_kinds", {}).items():
            kinds[kind] = kinds.get(kind, 0) + n
    named = ", ".join(f"{ERROR_KINDS.get(kind, kind)}: {n}" for kind, n in kinds.items())
    return (f"\n{errors} sample(s) could not be scored ({named}) and are counted as errors; rerun the same "
            "command to retry only those")


@dataclasses.dataclass
class _Before:
    """What existed of OUT before a run: its topmost missing folder (None when OUT existed) and OUT/.partial's
    entries."""

    top_new: Path | None
    partial: set[Path]


def _snapshot(out_dir: Path) -> _Before:
    top_new = None
    for folder in (out_dir, *out_dir.parents):
        if folder.exists():
            break
        top_new = folder
    partial = out_dir / ".partial"
    return _Before(top_new, {partial, *partial.iterdir()} if partial.is_dir() else set())


def _remove_empty_new(out_dir: Path, before: _Before) -> None:
    """After a failed run, remove the empty sample files and folders it made, so nothing is left that looks like
    a run begun; files holding finished samples stay, so that a rerun resumes from them."""
    partial = out_dir / ".partial"
    for path in list(partial.iterdir()) if partial.is_dir() else []:
        if path not in before.partial and path.is_file() and path.stat().st_size == 0:
            path.unlink()
    folders = [partial] if partial not in before.partial else []
    if before.top_new is not None:
        folders += [out_dir, *out_dir.parents[:len(out_dir.parents) - len(before.top_new.parents)]]
    for folder in folders:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
