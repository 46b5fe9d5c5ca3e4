"""`augury eval` for image tasks: real / blank / shuffled-image accuracy per template, next to chance.

    augury eval --model augury:runs/vision-cpu-s0 --tasks image_digits,image_charts,image_words --out results/
    augury eval --model augury:runs/vision-cpu-s0 --tasks image:my_task.jsonl --data_dir data/ --out results/

Built-in tasks draw `--limit` (default 300) held-out examples from augury.data.images (seed: `--model_args
seed=N`, default 0; digits from the images the run held out, by its `images.split_seed`). `image:FILE.jsonl`
reads records with an `image` field (augury.evals.images.read_image_records) relative to `--data_dir`. Writes
OUT/image_results_DATE.json; every input is checked before the model answers.
"""

from __future__ import annotations

import time
from pathlib import Path

from augury.errors import UsageError


def is_image_task(name: str) -> bool:
    from augury.evals.images import BUILTIN_TASKS

    return name in BUILTIN_TASKS or name.startswith("image:")


def run_image_eval(args, tasks: list[str], model_args: dict) -> int:
    from augury.data.images import make_examples
    from augury.data.records import TaskDataError
    from augury.evals.images import BUILTIN_TASKS, evaluate_image_tasks, read_image_records, summary_lines
    from augury.io import atomic_write_json, not_a_folder

    if not args.model or not args.model.startswith("augury:"):
        raise UsageError("image tasks need --model augury:RUN_DIR (an image-text run)")
    if not args.out:
        raise UsageError("--out is required")
    if why := not_a_folder(args.out):
        raise UsageError(f"--out {why}")
    repeated = sorted({t for t in tasks if tasks.count(t) > 1})
    if repeated:  # the same examples twice would double n and narrow the intervals for nothing
        raise UsageError(f"--tasks names {', '.join(repeated)} more than once")
    seed = model_args.pop("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"--model_args seed must be a whole number >= 0, got {seed!r}")
    try:
        from augury.evals.backends.augury_image import load_image_answerer

        answer_fn, size, check, split_seed = load_image_answerer(args.model.split(":", 1)[1], **model_args)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None
    examples = []
    for task in tasks:
        if task in BUILTIN_TASKS:
            part = make_examples(BUILTIN_TASKS[task], "heldout", args.limit or 300, seed, size, split_seed)
        else:
            try:
                part = read_image_records(Path(args.data_dir or ".") / task.split(":", 1)[1], size)[:args.limit]
            except TaskDataError as err:
                raise UsageError(str(err)) from None
        for i, e in enumerate(part):
            try:
                check(e.question)
            except ValueError as err:
                raise UsageError(f"{task}: question {i + 1} ({e.question[:40]!r}): {err}") from None
        examples += part
    started = time.time()
    report = evaluate_image_tasks(examples, answer_fn)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"image_results_{time.strftime('%Y-%m-%dT%H-%M-%S', time.gmtime(started))}.json"
    atomic_write_json(path, {"model": args.model, "tasks": tasks, "seed": seed, "results": report,
                             "seconds": time.time() - started})
    print("\n".join(summary_lines(report)))
    print(f"\nwrote {path}")
    return 0
