"""Turn a task's records into prompts: templates, k-shot examples from the few-shot split, chat or plain format.

Everything here runs before the model is loaded, so a bad record (a wrong number of choices, a target that is
not a choice) is reported once, naming the file and record, before any work starts.

Plain format (lm-evaluation-harness's): description + k x (text + target_delimiter + answer + fewshot_delimiter)
+ text. Chat format: a system message with the description, one user/assistant turn per example, then the
question as the last user message, rendered by the model's chat template (or sent as messages to a chat API).
The examples are chosen as lm-eval chooses them (augury.evals.fewshot).

    instances = build_instances(task_config, data_dir, num_fewshot=5, limit=100)   # what `augury eval` runs
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from augury.data.records import TaskDataError, read_records
from augury.evals.fewshot import FEWSHOT_SEED, ShotSampler
from augury.evals.taskconfig import DataSpec, TaskConfig
from augury.evals.templates import render, render_list


@dataclasses.dataclass
class Instance:
    """One evaluated record with its prompt and gold answer."""

    doc_id: int  # position in the data file (after --limit)
    doc: dict[str, Any]  # the record as read
    context: str  # the prompt the model sees (chat-formatted if --chat)
    choices: list[str] | None = None  # multiple choice: the answer strings (without the target delimiter)
    gold: int | None = None  # multiple choice: index of the correct choice
    labels: list[int] | None = None  # truthfulqa_mc2: 1 for each true choice
    target: str | None = None  # generate/code: the reference answer
    prompt_kind: str | None = None  # graded: the record's prompt kind (harmful, safe, ...)
    category: str | None = None  # graded: the category its rates are reported under
    messages: list[dict] | None = None  # the chat messages behind `context` (chat format only)


def data_path(data_dir: str | Path, spec: DataSpec) -> Path:
    return Path(data_dir) / spec.path


def load_spec(data_dir: str | Path, spec: DataSpec) -> tuple[Path, list[dict]]:
    path = data_path(data_dir, spec)
    return path, read_records(path, spec.format, spec.columns, spec.encoding, spec.json_field, spec.split_regex)


def _where(path: Path, cfg: TaskConfig, index: int) -> str:
    fmt = (cfg.data.format or path.suffix).lstrip(".")
    return f"{path}: record {index + 1}" + (" (after the header row)" if fmt == "csv" and not
                                           cfg.data.columns else "")


def _gold_index(raw: str, choices: list[str], where: str) -> int:
    raw_s = str(raw).strip()
    if raw_s.lstrip("-").isdigit():
        idx = int(raw_s)
    elif raw_s in choices:
        idx = choices.index(raw_s)
    else:
        raise TaskDataError(f"{where}: target {raw_s!r} is neither a choice index nor one of the choices")
    if not 0 <= idx < len(choices):
        raise TaskDataError(f"{where}: target index {idx} is out of range for {len(choices)} choices")
    return idx


def render_record(cfg: TaskConfig, doc: dict, where: str) -> dict[str, Any]:
    """The rendered text, choices, gold index, labels and target of one record (validated)."""
    values = {**cfg.variables, **doc}
    try:
        out: dict[str, Any] = {"text": render(cfg.doc_to_text, values)}
        if cfg.kind in ("multiple_choice", "truthfulqa_mc1", "truthfulqa_mc2"):
            choices = [str(c) for c in render_list(cfg.doc_to_choice, values)]
            if cfg.num_choices is not None and len(choices) != cfg.num_choices:
                raise TaskDataError(f"{where}: expected {cfg.num_choices} choices, found {len(choices)}")
            if len(choices) < 2:
                raise TaskDataError(f"{where}: a multiple-choice record needs at least 2 choices")
            out["choices"] = choices
            if cfg.kind == "truthfulqa_mc2":
                labels = [int(v) for v in render_list(cfg.doc_to_labels, values)]
                if len(labels) != len(choices) or set(labels) - {0, 1} or not 0 < sum(labels) < len(labels):
                    raise TaskDataError(f"{where}: labels {labels} must be 0/1 per choice with both kinds")
                out["labels"] = labels
                out["gold"] = labels.index(1)
            else:
                out["gold"] = _gold_index(render(cfg.doc_to_target, values), choices, where)
            out["target"] = choices[out["gold"]]
        elif cfg.kind in ("generate", "code"):
            out["target"] = render(cfg.doc_to_target, values)
            if cfg.kind == "code":
                _check_code_record(doc, where)
        elif cfg.kind == "graded":
            out["prompt_kind"] = render(cfg.doc_to_kind, values).strip()
            out["category"] = render(cfg.doc_to_category, values).strip() if cfg.doc_to_category else "all"
            if not out["prompt_kind"]:
                raise TaskDataError(f"{where}: doc_to_kind of {cfg.task!r} renders empty; every record needs a kind")
    except TaskDataError:
        raise
    except Exception as err:  # jinja2 UndefinedError, TypeError in a template, ...
        raise TaskDataError(f"{where}: cannot render the task templates of {cfg.task!r}: {err}") from None
    return out


def _check_code_record(doc: dict, where: str) -> None:
    """A code record carries what the sandbox's HumanEval runner needs, in a size its channel takes."""
    from augury.evals.sandbox_watch import CHANNEL_MAX_BYTES

    for key in ("prompt", "test", "entry_point"):
        if not isinstance(doc.get(key), str):
            raise TaskDataError(f"{where}: a code record lacks {key!r} (text): HumanEval's prompt, test and "
                                "entry_point are needed")
    size = len(doc["test"].encode("utf-8"))
    if size > CHANNEL_MAX_BYTES:
        raise TaskDataError(f"{where}: tests of {size} bytes; the sandbox takes at most {CHANNEL_MAX_BYTES}")


def render_shot(cfg: TaskConfig, doc: dict, where: str) -> dict[str, Any]:
    """A few-shot example: like `render_record`, then `fewshot_config`'s templates for its text and answer."""
    out = render_record(cfg, doc, where)
    values = {**cfg.variables, **doc}
    try:
        if cfg.fewshot_config.get("doc_to_text"):
            out["text"] = render(cfg.fewshot_config["doc_to_text"], values)
        if cfg.fewshot_config.get("doc_to_target"):
            out["target"] = render(cfg.fewshot_config["doc_to_target"], values)
    except Exception as err:  # jinja2 UndefinedError, TypeError in a template, ...
        raise TaskDataError(f"{where}: cannot render fewshot_config of {cfg.task!r}: {err}") from None
    return out


def apply_filter(cfg: TaskConfig, path: Path, docs: list[dict]) -> list[dict]:
    """The records whose columns hold the task's `filter` values; a column the file lacks is an error."""
    if not cfg.filter:
        return docs
    for column in cfg.filter:
        if docs and column not in docs[0]:
            raise TaskDataError(f"{path}: task {cfg.task!r} filters on column {column!r}, which the file lacks "
                                f"(columns: {sorted(docs[0])})")
    wanted = {c: {str(x) for x in (v if isinstance(v, list) else [v])} for c, v in cfg.filter.items()}
    return [d for d in docs if all(str(d.get(c)) in vals for c, vals in wanted.items())]


def effective_fewshot(cfg: TaskConfig, num_fewshot: int | None) -> int:
    """k for this task: the override where the task has a few-shot split; tasks without one stay zero-shot."""
    if cfg.kind == "perplexity" or cfg.fewshot is None:
        return 0 if num_fewshot is not None else cfg.num_fewshot
    return cfg.num_fewshot if num_fewshot is None else num_fewshot


def build_instances(cfg: TaskConfig, data_dir: str | Path, num_fewshot: int | None = None,
                    limit: int | None = None, chat: bool = False,
                    chat_template: Callable[[list[dict]], str] | None = None,
                    fewshot_seed: int = FEWSHOT_SEED) -> list[Instance]:
    """Every evaluated record of `cfg` with its prompt, the shots drawn by a sampler seeded with `fewshot_seed`;
    raises TaskDataError on the first bad record."""
    k = effective_fewshot(cfg, num_fewshot)
    path, docs = load_spec(data_dir, cfg.data)
    docs = apply_filter(cfg, path, docs)
    if limit is not None:
        docs = docs[:limit]
    if not docs:
        raise TaskDataError(f"{path}: no records for task {cfg.task!r}")
    rendered = [render_record(cfg, d, _where(path, cfg, i)) for i, d in enumerate(docs)]
    sampler, fpath, fdocs, same_split = None, None, [], False
    if k and cfg.kind != "perplexity":
        if cfg.fewshot is None:
            raise TaskDataError(f"task {cfg.task!r} has no few-shot split but {k}-shot was asked for")
        # lm-eval runs a task's process_docs on the few-shot split too: a record the filter drops is no example
        fpath, fdocs = load_spec(data_dir, cfg.fewshot)
        fdocs = apply_filter(cfg, fpath, fdocs)
        # lm-eval's rule: no record is shown its own answer. Drawn from the evaluated file itself (however the
        # two specs spell it), the record being asked is left out of its own shots.
        same_split = fpath.resolve() == path.resolve()
        need = k + 1 if same_split else k
        if len(fdocs) < need:
            raise TaskDataError(f"{fpath}: {k}-shot needs {need} records, the file has {len(fdocs)}"
                                + (" after the task's filter" if cfg.filter else ""))
        sampler = ShotSampler(fdocs, cfg.fewshot_config.get("sampler", "default"), fewshot_seed)
    shot_cache: dict[int, dict[str, Any]] = {}  # rendered on first use: a large split is mostly never shown

    def shot(j: int) -> dict[str, Any]:
        if j not in shot_cache:
            shot_cache[j] = render_shot(cfg, fdocs[j], _where(fpath, cfg, j))
        return shot_cache[j]

    out = []
    for i, (doc, r) in enumerate(zip(docs, rendered)):
        try:  # in record order from one seeded generator, as lm-eval builds its requests
            chosen = sampler.sample(k, doc if same_split else None) if sampler else []
        except ValueError as err:  # copies of the record left too few others
            raise TaskDataError(f"{_where(path, cfg, i)}: {err}") from None
        shots = [shot(j) for j in chosen]
        messages = None
        if cfg.kind == "perplexity":
            context = r["text"]
        elif chat:
            messages = ([{"role": "system", "content": cfg.description.strip()}] if cfg.description.strip()
                        else [])
            for s in shots:
                messages += [{"role": "user", "content": s["text"]},
                             {"role": "assistant", "content": s["target"]}]
            messages.append({"role": "user", "content": r["text"]})
            context = chat_template(messages) if chat_template else r["text"]
        else:
            examples = "".join(s["text"] + cfg.target_delimiter + s["target"] + cfg.fewshot_delimiter
                               for s in shots)
            context = cfg.description + examples + r["text"]
        out.append(Instance(doc_id=i, doc=doc, context=context, choices=r.get("choices"), gold=r.get("gold"),
                            labels=r.get("labels"), target=r.get("target"), messages=messages,
                            prompt_kind=r.get("prompt_kind"), category=r.get("category")))
    return out
