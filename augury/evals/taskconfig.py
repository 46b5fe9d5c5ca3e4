"""Task definitions: YAML files shipped in `augury/evals/tasks/` (plus any folder the user adds).

A task YAML names its data file relative to `--data_dir`, Jinja2 templates for the prompt, choices and target
(the same template language lm-evaluation-harness uses), the metrics and the few-shot split. A new benchmark is
a new YAML file. A YAML with `subtasks` expands into one task per subject and one group per category, e.g.
`mmlu` -> `mmlu_stem` -> `mmlu_abstract_algebra`. See docs/evals.md for every field.

    from augury.evals.taskconfig import TaskRegistry
    reg = TaskRegistry.load()
    reg.resolve(["mmlu_anatomy", "truthfulqa_mc2"])
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from augury.evals.fewshot import SAMPLERS

KINDS = ("multiple_choice", "truthfulqa_mc1", "truthfulqa_mc2", "generate", "code", "perplexity", "graded")
DEFAULT_METRICS = {
    "multiple_choice": ["acc", "acc_norm", "ece"],
    "truthfulqa_mc1": ["acc"],
    "truthfulqa_mc2": ["acc"],
    "generate": ["exact_match"],
    "code": ["pass@1"],
    "perplexity": ["word_perplexity", "byte_perplexity", "bits_per_byte"],
    "graded": ["incorrect_rate", "incorrect_rate_strmatch", "refusal_rate", "refusal_rate_strmatch"],
}
GENERATE_METRICS = ("exact_match", "f1")
# graded: per-sample rates (a grader's probability, or 0/1 by the string-match refusal list); docs/safety.md
GRADED_METRICS = ("incorrect_rate", "incorrect_rate_strmatch", "refusal_rate", "refusal_rate_strmatch",
                  "disallowed_rate", "desired_refusal_rate")
# What the runner scores per kind (code: pass@k, checked apart). truthfulqa_mc2's acc is a probability mass, not a
# 0/1 hit, so it has neither acc_norm nor an ECE.
KIND_METRICS = {
    "multiple_choice": ("acc", "acc_norm", "ece"),
    "truthfulqa_mc1": ("acc", "acc_norm", "ece"),
    "truthfulqa_mc2": ("acc",),
    "generate": GENERATE_METRICS,
    "perplexity": ("word_perplexity", "byte_perplexity", "bits_per_byte"),
    "graded": GRADED_METRICS,
}


class TaskConfigError(ValueError):
    """A task name or task YAML is wrong (the message names the task or file and key)."""


@dataclasses.dataclass
class DataSpec:
    """Where a task's records come from."""

    path: str  # file relative to --data_dir (a Jinja2 template over the subtask variables)
    format: str | None = None  # csv, json, jsonl or text; default from the extension (.gz is gzip)
    columns: list[str] | None = None  # CSV column names when the file has no header row
    encoding: str = "utf-8-sig"  # text encoding; the default strips a UTF-8 byte-order mark
    json_field: str | None = None  # for a JSON object, the key that holds the list of records
    split_regex: str | None = None  # for text: a multiline regex whose matching lines start new documents


@dataclasses.dataclass
class TaskConfig:
    """One evaluation task, after subtask expansion (every template variable filled in)."""

    task: str  # the task's name, as `--tasks` takes it
    kind: str  # multiple_choice | truthfulqa_mc1 | truthfulqa_mc2 | generate | code | perplexity | graded
    data: DataSpec  # the evaluated records
    version: float = 1.0  # bump when the prompt or scoring changes; stored in results["versions"]
    fewshot: DataSpec | None = None  # the split few-shot examples come from (fewshot_config.sampler picks)
    num_fewshot: int = 0  # default k; --num_fewshot overrides it for tasks that have a few-shot split
    description: str = ""  # text placed before the few-shot examples
    doc_to_text: str = "{{text}}"  # the prompt for one record
    doc_to_target: str = "{{target}}"  # gold answer: a choice index or choice text (MC), the answer (generate)
    doc_to_choice: list[str] | str | None = None  # MC choices: a list of templates, or one rendering to a list
    doc_to_labels: str | None = None  # truthfulqa_mc2: a template rendering to a list of 0/1 labels
    num_choices: int | None = None  # if set, every record must have exactly this many choices
    target_delimiter: str = " "  # between prompt and answer (the leading space belongs to the answer)
    fewshot_delimiter: str = "\n\n"  # between few-shot examples
    # lm-eval's fewshot_config: templates that render the few-shot examples differently from the evaluated
    # record, e.g. {"doc_to_target": "{{solution}}"} shows worked solutions while the gold stays the final answer
    fewshot_config: dict[str, str] = dataclasses.field(default_factory=dict)
    metrics: list[str] = dataclasses.field(default_factory=list)  # metric names (default per kind)
    generation: dict[str, Any] = dataclasses.field(default_factory=dict)  # until, max_gen_toks, do_sample,...
    extract_regex: str | None = None  # generate: take the answer from this regex's first group
    n_samples: int = 1  # code: samples per problem (pass@k needs k <= n_samples)
    timeout_s: float = 10.0  # code: wall-clock limit per program
    group: str | None = None  # the group this task reports under (e.g. mmlu_stem)
    filter: dict[str, Any] = dataclasses.field(default_factory=dict)  # keep records whose column has this value
    # (or one of these values): {label: unsafe}
    grader: str = "offline"  # graded: the grader spec (augury.safety.graders); `augury eval --grader` overrides
    grader_model_args: str = ""  # graded: a judge model's backend options, key=value,...
    rubric: str = "default"  # graded: the rubric (a shipped name or a YAML file)
    doc_to_kind: str = "harmful"  # graded: the prompt kind of a record (a template), one of the rubric's kinds
    doc_to_category: str = ""  # graded: the category rates are reported per (a template; "" = one category)
    refusal_list: str = "advbench"  # graded: the string-match refusal list (advbench or xstest)
    variables: dict[str, str] = dataclasses.field(default_factory=dict)  # subtask variables (subject, ...)
    source: str = ""  # the YAML file this came from

    def fingerprint(self) -> str:
        """A hash of everything that changes the results: resumed samples must come from the same task."""
        blob = json.dumps(dataclasses.asdict(self) | {"source": ""}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name for f in dataclasses.fields(TaskConfig)}
_DATA_FIELDS = {f.name for f in dataclasses.fields(DataSpec)}


def _fits(value: Any, hint: Any) -> bool:
    """Whether a YAML value has the declared type (int for a float is fine; a bool is not a number)."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _check_types(raw: dict, cls: type, where: str) -> None:
    """One clear error for the first key whose value has the wrong type (a number as a string, a list as text)."""
    hints = typing.get_type_hints(cls)
    for key, value in raw.items():
        hint = hints.get(key)
        if hint is not None and not _fits(value, hint):
            shown = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
            raise TaskConfigError(f"{where}: {key} must be {shown}, got {value!r}")


def _render_vars(value: Any, variables: dict[str, str]) -> Any:
    """Fill subtask variables ({{subject}}) into config strings, leaving per-record templates alone."""
    if isinstance(value, str) and variables:
        from augury.evals.templates import render

        return render(value, variables, strict=False)
    if isinstance(value, list):
        return [_render_vars(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _render_vars(v, variables) for k, v in value.items()}
    return value


# Keys of fewshot_config (lm-eval's names); `sampler` is lm-eval's: default (random, seeded) or first_n.
FEWSHOT_CONFIG_KEYS = {"doc_to_text", "doc_to_target", "sampler"}


def _data_spec(raw: Any, where: str) -> DataSpec:
    if isinstance(raw, str):
        raw = {"path": raw}
    if not isinstance(raw, dict) or "path" not in raw:
        raise TaskConfigError(f"{where}: must be a path or a mapping with 'path'")
    unknown = set(raw) - _DATA_FIELDS
    if unknown:
        raise TaskConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(_DATA_FIELDS)}")
    _check_types(raw, DataSpec, where)
    return DataSpec(**raw)


def build_config(raw: dict, source: str, variables: dict[str, str] | None = None) -> TaskConfig:
    """Validate one (expanded) task mapping into a TaskConfig."""
    variables = variables or {}
    unknown = set(raw) - _FIELDS - {"subtasks", "group_description"}
    if unknown:
        raise TaskConfigError(f"{source}: unknown key(s) {sorted(unknown)}")
    for key in ("task", "kind", "data"):
        if key not in raw:
            raise TaskConfigError(f"{source}: missing required key {key!r}")
    if raw["kind"] not in KINDS:
        raise TaskConfigError(f"{source}: kind {raw['kind']!r} is not one of {', '.join(KINDS)}")
    _check_types({k: v for k, v in raw.items() if k not in ("data", "fewshot")}, TaskConfig, source)
    # Per-record templates keep their {{field}} references; only the subtask variables are filled in here.
    plain = {k: v for k, v in raw.items() if k not in ("subtasks", "group_description")}
    keep_templates = {"doc_to_text", "doc_to_target", "doc_to_choice", "doc_to_labels", "fewshot_config"}
    filled = {k: (v if k in keep_templates else _render_vars(v, variables)) for k, v in plain.items()}
    filled["data"] = _data_spec(filled["data"], f"{source}: data")
    if filled.get("fewshot") is not None:
        filled["fewshot"] = _data_spec(filled["fewshot"], f"{source}: fewshot")
    shot_cfg = filled.get("fewshot_config") or {}
    if not isinstance(shot_cfg, dict) or set(shot_cfg) - FEWSHOT_CONFIG_KEYS:
        raise TaskConfigError(f"{source}: fewshot_config takes {sorted(FEWSHOT_CONFIG_KEYS)}, got {shot_cfg!r}")
    if shot_cfg.get("sampler", "default") not in SAMPLERS:
        raise TaskConfigError(f"{source}: fewshot_config.sampler {shot_cfg['sampler']!r} is not one of "
                              f"{', '.join(SAMPLERS)} (lm-eval's samplers)")
    cfg = TaskConfig(**filled, variables=dict(variables), source=source)
    if not cfg.metrics:
        cfg.metrics = list(DEFAULT_METRICS[cfg.kind])
    if cfg.kind in ("multiple_choice", "truthfulqa_mc1", "truthfulqa_mc2") and cfg.doc_to_choice is None:
        raise TaskConfigError(f"{source}: task {cfg.task!r} of kind {cfg.kind} needs doc_to_choice")
    if cfg.num_fewshot and cfg.fewshot is None and cfg.kind != "perplexity":
        raise TaskConfigError(f"{source}: task {cfg.task!r} sets num_fewshot {cfg.num_fewshot} but no fewshot split")
    if cfg.num_fewshot < 0:
        raise TaskConfigError(f"{source}: num_fewshot must be >= 0, got {cfg.num_fewshot}")
    if cfg.timeout_s <= 0:
        raise TaskConfigError(f"{source}: timeout_s must be > 0, got {cfg.timeout_s}")
    if cfg.kind == "truthfulqa_mc2" and not cfg.doc_to_labels:
        raise TaskConfigError(f"{source}: task {cfg.task!r} of kind truthfulqa_mc2 needs doc_to_labels")
    if cfg.kind in KIND_METRICS:  # an unknown metric would crash the results after every sample was scored
        bad = [m for m in cfg.metrics if m not in KIND_METRICS[cfg.kind]]
        if bad:
            raise TaskConfigError(f"{source}: {cfg.kind} metrics {bad} unknown; use {list(KIND_METRICS[cfg.kind])}")
    if not isinstance(cfg.filter, dict) or not all(isinstance(v, (str, int, float, list)) for v in cfg.filter.values()):
        raise TaskConfigError(f"{source}: filter maps a column to a value or a list of values, got {cfg.filter!r}")
    _check_generation(cfg)
    if cfg.extract_regex:
        try:
            re.compile(cfg.extract_regex)
        except re.error as err:
            raise TaskConfigError(f"{source}: extract_regex {cfg.extract_regex!r} is not a regular expression "
                                  f"({err})") from None
    if cfg.kind == "graded":
        if cfg.refusal_list not in ("advbench", "xstest"):
            raise TaskConfigError(f"{source}: refusal_list must be advbench or xstest, got {cfg.refusal_list!r}")
    if cfg.kind == "code":
        for m in cfg.metrics:
            if not m.startswith("pass@") or not m[5:].isdigit() or not 1 <= int(m[5:]) <= cfg.n_samples:
                raise TaskConfigError(f"{source}: metric {m!r}: code tasks report pass@k with 1 <= k <= n_samples "
                                      f"({cfg.n_samples})")
    return cfg


GENERATION_KEYS = ("until", "max_gen_toks", "do_sample", "temperature", "top_p")  # GenRequest's task options


def _check_generation(cfg: TaskConfig) -> None:
    """`generation` holds GenRequest options of the right types; a lone stop string is one stop (as in lm-eval)."""
    from augury.evals.lm import GenRequest

    unknown = sorted(set(cfg.generation) - set(GENERATION_KEYS))
    if unknown:
        raise TaskConfigError(f"{cfg.source}: generation option(s) {unknown} unknown; known: {list(GENERATION_KEYS)}")
    if isinstance(cfg.generation.get("until"), str):
        cfg.generation["until"] = [cfg.generation["until"]]
    _check_types(cfg.generation, GenRequest, f"{cfg.source}: generation")
    if not all(cfg.generation.get("until", ["x"])):  # "" is in every text: generation would stop at once
        raise TaskConfigError(f"{cfg.source}: generation: until holds an empty stop string")
    # the ranges every backend can serve (augury's engine refuses the others, mid-run; hf's would generate nothing,
    # greedily, or fail in torch)
    g = cfg.generation
    if g.get("max_gen_toks", 0) < 0:
        raise TaskConfigError(f"{cfg.source}: generation: max_gen_toks must be >= 0, got {g['max_gen_toks']!r}")
    if not 0 <= g.get("temperature", 0) < math.inf:  # also refuses NaN
        raise TaskConfigError(f"{cfg.source}: generation: temperature must be a finite number >= 0 (0 is greedy), "
                              f"got {g['temperature']!r}")
    if not 0 < g.get("top_p", 1) <= 1:
        raise TaskConfigError(f"{cfg.source}: generation: top_p must be in (0, 1] (1 disables it), got {g['top_p']!r}")


class TaskRegistry:
    """Every known task and group, from the shipped YAML files plus any extra folders."""

    def __init__(self) -> None:
        self.tasks: dict[str, TaskConfig] = {}
        self.groups: dict[str, list[str]] = {}  # group -> member tasks or groups, in order

    @classmethod
    def load(cls, extra_dirs: list[str | Path] = ()) -> TaskRegistry:
        reg = cls()
        dirs = [Path(__file__).resolve().parent / "tasks", *map(Path, extra_dirs)]
        for folder in dirs:
            if folder.exists() and not folder.is_dir():
                raise TaskConfigError(f"task folder {str(folder)!r} is a file, not a folder: give the folder of "
                                      f"task YAML files that holds it")
            if not folder.is_dir():
                raise TaskConfigError(f"task folder {str(folder)!r} does not exist")
            for path in sorted(folder.glob("*.yaml")):
                reg.add_file(path)
        return reg

    def add_file(self, path: Path) -> None:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise TaskConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
        except yaml.YAMLError as err:  # its own message spans lines (a quoted excerpt with a caret): one line here
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise TaskConfigError(f"{path}: not valid YAML{where}: {problem}") from None
        if not isinstance(raw, dict):
            raise TaskConfigError(f"{path}: expected a mapping at the top level")
        subtasks = raw.get("subtasks")
        if subtasks is None:
            cfg = build_config(raw, str(path))
            self._add(cfg)
            if cfg.group:  # a single task may name the group it reports under (the group is made on first use)
                if cfg.group in self.tasks:
                    raise TaskConfigError(f"{path}: group {cfg.group!r} is also a task name")
                self.groups.setdefault(cfg.group, []).append(cfg.task)
            return
        group = raw.get("group")
        if not group or not isinstance(subtasks, dict):
            raise TaskConfigError(f"{path}: 'subtasks' needs a 'group' name and a mapping "
                                  "category -> [subjects]")
        for category, subjects in subtasks.items():
            if not isinstance(subjects, list) or not all(isinstance(x, str) and x for x in subjects):
                raise TaskConfigError(f"{path}: subtasks: {category} must be a list of subject names, "
                                      f"got {subjects!r}")
        self.groups[group] = []
        for category, subjects in subtasks.items():
            cat_group = f"{group}_{category}"
            self.groups[group].append(cat_group)
            self.groups[cat_group] = []
            for subject in subjects:
                variables = {"subject": subject, "subject_text": subject.replace("_", " "),
                             "category": category}
                cfg = build_config({**raw, "group": cat_group}, str(path), variables)
                self._add(cfg)
                self.groups[cat_group].append(cfg.task)

    def _add(self, cfg: TaskConfig) -> None:
        if cfg.task in self.tasks or cfg.task in self.groups:
            raise TaskConfigError(f"{cfg.source}: task name {cfg.task!r} is already defined by "
                                  f"{self.tasks[cfg.task].source if cfg.task in self.tasks else 'a group'}")
        self.tasks[cfg.task] = cfg

    def names(self) -> list[str]:
        return sorted(set(self.tasks) | set(self.groups))

    def resolve(self, names: list[str]) -> list[TaskConfig]:
        """The tasks to run for task and group names, in order, without repeats; unknown names raise."""
        out: dict[str, TaskConfig] = {}

        def visit(name: str) -> None:
            if name in self.tasks:
                out.setdefault(name, self.tasks[name])
            elif name in self.groups:
                for member in self.groups[name]:
                    visit(member)
            else:
                import difflib

                close = difflib.get_close_matches(name, self.names(), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise TaskConfigError(f"unknown task {name!r}{hint} (see `augury eval --list_tasks`)")

        for name in names:
            visit(name)
        return list(out.values())

    def groups_over(self, task_names: set[str]) -> dict[str, list[str]]:
        """The groups whose every task is among `task_names` (groups are reported only when complete)."""

        def leaves(name: str) -> list[str]:
            return [t for m in self.groups[name] for t in (leaves(m) if m in self.groups else [m])]

        return {g: members for g, members in self.groups.items() if set(leaves(g)) <= task_names}
