"""Run tasks against a model: build requests, score them in chunks, keep every finished sample, resume.

Each finished sample is appended (fsynced) to `OUT/.partial/<task>.<fingerprint>.jsonl` as soon as its chunk is
scored. A rerun with the same task definition, few-shot count and seed, format and model (and, for a graded task,
the same rubric and grader content: grader file, training data, rules source or judge weights) skips those samples;
a changed definition gets a new fingerprint, so stale samples are never mixed in. A stored sample is reused only for
the same record and prompt (its `doc_hash` and `prompt_hash` match the ones built now), so edited data, few-shot
examples or chat template are rescored. Samples whose requests failed on the endpoint (the backend returned None)
are not stored: they are counted as errors and retried on the next run; so are code samples the sandbox itself could
not run (status "error") and samples whose log-likelihood came back NaN. Reading and appending that file is
partial.py's.

    from augury.evals.runner import evaluate
    results = evaluate(lm, registry.resolve(["mmlu"]), data_dir="data", out_dir="out", model_spec="hf:m")
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from augury.evals import metrics as M
from augury.evals.fewshot import FEWSHOT_SEED
from augury.evals.lm import LM, GenRequest, split_context
from augury.evals.partial import (
    ResumeError,  # noqa: F401  (re-exported for older imports)
    append_records,
    load_partial,
)
from augury.evals.prompts import Instance, apply_filter, build_instances, effective_fewshot, load_spec
from augury.evals.taskconfig import TaskConfig

MC_KINDS = ("multiple_choice", "truthfulqa_mc1", "truthfulqa_mc2")
CODE_STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
# Part of every resume fingerprint: raised when the same prompts start to be scored differently (2: chat choices
# without the target delimiter, lm-eval's BOS rules for hf), so that samples scored the old way are not mixed in.
# 3 is given only to the tasks it changes (run_fingerprint): generation without `until` stops at the task's
# fewshot_delimiter, no longer at "\n\n".
SCORING_RULES = 2


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _non_serializable(o: Any) -> Any:
    """lm-eval's handle_non_serializable (lm_eval/utils.py), so that a doc_hash is the one it writes."""
    if isinstance(o, (np.bool_, np.integer, np.floating)):
        return o.item()
    return list(o) if isinstance(o, set) else str(o)


def _doc_hash(doc: dict) -> str:
    """lm-eval 0.4's `doc_hash` (evaluator.py), so samples files compare with its --log_samples output."""
    return _hash(json.dumps(doc, indent=2, default=_non_serializable, ensure_ascii=False))


def _legacy_doc_hash(doc: dict) -> str:
    """The doc_hash of samples stored by augury before it wrote lm-eval's: still matched on resume."""
    return _hash(json.dumps(doc, sort_keys=True))


def choice_delimiter(cfg: TaskConfig, chat: bool) -> str:
    """What goes between the prompt and each scored choice. Under a chat template lm-eval 0.4 scores the bare
    choice, which opens the assistant's turn; its one exception (a task `gen_prefix` that does not end in
    whitespace keeps the delimiter) has no counterpart here: augury's tasks have no gen_prefix."""
    return "" if chat else cfg.target_delimiter


def check_choices_scorable(cfg: TaskConfig, instances: Sequence[Instance], chat: bool) -> None:
    """TaskDataError for a multiple-choice option with nothing to score: an empty choice after an empty delimiter
    (target_delimiter "", or --chat, which scores bare choices) is an empty continuation, which has no tokens
    whose log-likelihood could be summed (lm-eval's models refuse it too). Without --chat the context's trailing
    whitespace moves onto the continuation (split_context), so "Answer: " keeps an empty choice scorable as " ";
    under --chat the chat template's trailing text is not the option, so an empty choice is refused there."""
    from augury.data.records import TaskDataError

    if cfg.kind not in MC_KINDS:
        return
    delimiter = choice_delimiter(cfg, chat)
    for inst in instances:
        for j, choice in enumerate(inst.choices or []):
            if (delimiter + choice if chat else split_context(inst.context, delimiter + choice)[1]) == "":
                why = ("--chat scores each choice bare, without the target delimiter" if chat
                       else 'the task\'s target_delimiter is ""')
                raise TaskDataError(f"task {cfg.task!r}, record {inst.doc_id}: choice {j} is empty and {why}, so "
                                    f"there is nothing to score; give the choice a text"
                                    + ("" if chat else ' or the task a target_delimiter such as " "'))


# A failed sample's error, by its kind, as the closing message of `augury eval` names it
ERROR_KINDS = {"endpoint request failed": "failed endpoint requests",
               "the sandbox could not run a program": "programs the sandbox could not run",
               "the model gave a NaN log-likelihood": "NaN log-likelihoods",
               "grader": "replies the grader could not grade"}


def error_kind(error: str) -> str:
    """What kind of failure a sample's "error" is (ERROR_KINDS' keys; a grader's failures, "grader: ...", are
    one kind whatever the grader said, which may quote the reply)."""
    return "grader" if error.startswith("grader:") else error


def run_fingerprint(cfg: TaskConfig, model_spec: str, model_identity: dict, num_fewshot: int | None,
                    chat: bool, fewshot_seed: int = FEWSHOT_SEED) -> str:
    """What resumed samples must share: task definition, model and its output-changing options, k, format, the
    few-shot seed where it picks the shots (k > 0, the `default` sampler), and for a graded task the content of
    its rubric and grader (`augury.safety.evaluation.resume_key`)."""
    k = effective_fewshot(cfg, num_fewshot)
    rules = SCORING_RULES
    if (cfg.kind in ("generate", "graded") and "until" not in cfg.generation
            and cfg.fewshot_delimiter != "\n\n"):
        rules = 3  # generation stopped at "\n\n" before rules 3 and stops at the fewshot_delimiter now
    key = [cfg.fingerprint(), model_spec, model_identity, k, chat, rules]
    if cfg.kind == "graded":
        from augury.evals.graded import plugin

        # the grader's and rubric's content: the same spec string may name a retrained grader or edited rubric
        key.append(plugin(cfg.kind).resume_key(cfg))
    if k and cfg.fewshot_config.get("sampler", "default") == "default" and fewshot_seed != FEWSHOT_SEED:
        key.append(fewshot_seed)  # only then: runs with lm-eval's default seed keep the key they always had
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _gen_request(cfg: TaskConfig, inst: Instance, seed: int | None = None) -> GenRequest:
    g = dict(cfg.generation)
    # lm-eval's default: stop where the next few-shot example would begin.
    until = g.pop("until", CODE_STOP if cfg.kind == "code" else [cfg.fewshot_delimiter])
    req = GenRequest(context=inst.context, until=list(until), messages=inst.messages, seed=seed)
    for key, value in g.items():
        if not hasattr(req, key):
            raise ValueError(f"{cfg.source}: generation option {key!r} unknown; known: "
                             "until, max_gen_toks, do_sample, temperature, top_p")
        setattr(req, key, value)
    return req


def score_chunk(lm: LM, cfg: TaskConfig, chunk: list[Instance], chat: bool = False,
                hidden_dirs: Sequence[str | Path] = ()) -> list[dict]:
    """Score one chunk of instances; a record with "error" marks a sample whose requests failed.

    `hidden_dirs`: folders holding answers (task data, results), which code under test must not read.
    """
    if cfg.kind in MC_KINDS:
        delimiter = choice_delimiter(cfg, chat)
        reqs = [(inst.context, delimiter + c) for inst in chunk for c in inst.choices]
        resps = lm.loglikelihood(reqs)
        out, pos = [], 0
        for inst in chunk:
            n = len(inst.choices)
            mine, args = resps[pos:pos + n], reqs[pos:pos + n]
            pos += n
            if any(r is None for r in mine):
                out.append({"doc_id": inst.doc_id, "error": "endpoint request failed"})
                continue
            lls = [float(r[0]) for r in mine]
            if any(math.isnan(v) for v in lls):  # argmax would "predict" the NaN choice (an overflowing model)
                out.append({"doc_id": inst.doc_id, "error": "the model gave a NaN log-likelihood"})
                continue
            rec = _base_record(inst, [list(a) for a in args], [[r[0], bool(r[1])] for r in mine])
            s = M.score_multiple_choice(lls, inst.choices, inst.gold)
            if cfg.kind == "truthfulqa_mc2":
                rec["acc"] = M.score_mc2(lls, inst.labels)
            else:
                rec.update(acc=s["acc"], acc_norm=s["acc_norm"])
            rec.update(confidence=s["confidence"], pred=s["pred"], gold=inst.gold)
            out.append(rec)
        return out
    if cfg.kind == "perplexity":
        resps = lm.loglikelihood_rolling([inst.context for inst in chunk])
        out = []
        for inst, ll in zip(chunk, resps):
            if ll is None or math.isnan(ll):
                why = "endpoint request failed" if ll is None else "the model gave a NaN log-likelihood"
                out.append({"doc_id": inst.doc_id, "error": why})
                continue
            rec = _base_record(inst, [[inst.context]], [ll])
            rec.update(loglikelihood=float(ll), words=M.count_words(inst.context),
                       bytes=len(inst.context.encode("utf-8")))
            out.append(rec)
        return out
    if cfg.kind == "generate":
        reqs = [_gen_request(cfg, inst) for inst in chunk]
        outs = lm.generate_until(reqs)
        res = []
        for inst, req, text in zip(chunk, reqs, outs):
            if text is None:
                res.append({"doc_id": inst.doc_id, "error": "endpoint request failed"})
                continue
            rec = _base_record(inst, [[req.context, {"until": req.until}]], [text])
            rec.update(M.score_generation(text, inst.target, cfg.metrics, cfg.extract_regex))
            rec["filtered_resps"] = [rec.pop("extracted")]
            res.append(rec)
        return res
    if cfg.kind == "code":
        return _score_code(lm, cfg, chunk, hidden_dirs)
    if cfg.kind == "graded":
        from augury.evals.graded import plugin

        return plugin(cfg.kind).score_chunk(lm, cfg, chunk, _gen_request, _base_record)
    raise ValueError(f"unknown task kind {cfg.kind!r}")


def _score_code(lm: LM, cfg: TaskConfig, chunk: list[Instance], hidden_dirs: Sequence[str | Path]) -> list[dict]:
    # Imported here: the sandbox is only needed (and only exists) for code tasks.
    from augury.evals.code_exec import check_humaneval, pass_at_k

    sampled = cfg.n_samples > 1
    reqs = [_gen_request(cfg, inst, seed=s) for inst in chunk for s in range(cfg.n_samples)]
    if sampled:
        for r in reqs:
            if "do_sample" not in cfg.generation:
                r.do_sample = True
            if "temperature" not in cfg.generation:
                r.temperature = 0.8
    outs = lm.generate_until(reqs)
    res = []
    for i, inst in enumerate(chunk):
        mine = outs[i * cfg.n_samples:(i + 1) * cfg.n_samples]
        if any(o is None for o in mine):
            res.append({"doc_id": inst.doc_id, "error": "endpoint request failed"})
            continue
        checks = [check_humaneval(inst.doc, o, cfg.timeout_s, hidden_dirs) for o in mine]
        if any(r.status == "error" for r in checks):
            # The sandbox itself could not run a program: the completion was never judged, so it is neither a
            # pass nor a fail. Counted and retried, like a failed endpoint request.
            res.append({"doc_id": inst.doc_id, "error": "the sandbox could not run a program"})
            continue
        c = sum(1 for r in checks if r.passed)
        rec = _base_record(inst, [[inst.context, {"until": reqs[0].until}]], mine)
        rec["filtered_resps"] = [r.status for r in checks]
        rec.update({"n": cfg.n_samples, "c": c})
        for m in cfg.metrics:
            rec[m] = pass_at_k(cfg.n_samples, c, int(m[5:]))
        res.append(rec)
    return res


def _base_record(inst: Instance, arguments: list, resps: list) -> dict[str, Any]:
    """lm-eval's --log_samples record: `resps` holds each request's list of responses (one request with n
    samples: one list of n), `filtered_resps` one response per request; `metrics` is set by _lm_eval_layout."""
    target = inst.target if inst.target is not None else ""
    return {"doc_id": inst.doc_id, "doc": inst.doc, "target": target, "arguments": arguments,
            "resps": _per_request(resps, arguments), "filtered_resps": resps, "filter": "none",
            "doc_hash": _doc_hash(inst.doc), "prompt_hash": _hash(inst.context), "target_hash": _hash(str(target))}


def _per_request(resps: list, arguments: list) -> list:
    return [[r] for r in resps] if len(resps) == len(arguments) else [list(resps)]


def _lm_eval_layout(rec: dict, cfg: TaskConfig) -> dict:
    """The record with lm-eval's `filter` and `metrics`; one stored by an older augury (flat `resps`, neither key)
    is brought to the same layout, so a resumed run's samples file has one shape."""
    if "filter" not in rec:
        rec["resps"], rec["filter"] = _per_request(rec["resps"], rec["arguments"]), "none"
    # perplexity's metrics are corpus-level (its samples hold the log-likelihood, words and bytes they come from)
    rec["metrics"] = list(cfg.metrics) if cfg.kind == "perplexity" else [m for m in cfg.metrics if m in rec]
    return rec


class _Progress:
    """A tqdm bar on stderr over all pending samples (silent when stderr is not a terminal, unless forced)."""

    def __init__(self, total: int, enabled: bool | None):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="sample", file=sys.stderr, dynamic_ncols=True,
                        disable=(not sys.stderr.isatty()) if enabled is None else not enabled)

    def update(self, n: int, task: str) -> None:
        self.bar.set_description(task[:40])
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def record_count(cfg: TaskConfig, data_dir: str | Path) -> int:
    """How many records the task has before --limit (lm-eval's `n-samples.original`)."""
    path, docs = load_spec(data_dir, cfg.data)
    return len(apply_filter(cfg, path, docs))


def evaluate(lm: LM, configs: Sequence[TaskConfig], data_dir: str | Path, out_dir: str | Path, model_spec: str,
             num_fewshot: int | None = None, limit: int | None = None, chat: bool = False,
             chunk_size: int = 64, progress: bool | None = None,
             instances: dict[str, list[Instance]] | None = None,
             fewshot_seed: int = FEWSHOT_SEED) -> dict[str, dict]:
    """Score every task; returns {task: {"samples": [...], "errors": n, "instances": n, "original": n,
    "resumed": n, "seconds": s}} ("instances" counts the records asked for, "original" those before --limit).

    `instances` (task -> prompts) may be passed when the caller already built them (with the same
    `fewshot_seed`) to validate inputs.
    """
    partial_dir = Path(out_dir) / ".partial"
    partial_dir.mkdir(parents=True, exist_ok=True)
    if instances is None or chat:
        template = lm.apply_chat_template if chat else None
        instances = {cfg.task: build_instances(cfg, data_dir, num_fewshot, limit, chat, template, fewshot_seed)
                     for cfg in configs}
    for cfg in configs:
        check_choices_scorable(cfg, instances[cfg.task], chat)
    plan = []
    for cfg in configs:
        fingerprint = run_fingerprint(cfg, model_spec, lm.identity(), num_fewshot, chat, fewshot_seed)
        path = partial_dir / f"{cfg.task}.{fingerprint}.jsonl"
        # Keyed by content as well as position: a record edited since is scored again, and a file holding
        # both versions serves whichever data the run is given.
        stored = {(r["doc_id"], r.get("doc_hash"), r.get("prompt_hash")): r for r in load_partial(path)}
        done, todo = {}, []
        for inst in instances[cfg.task]:
            prompt_hash = _hash(inst.context)
            rec = stored.get((inst.doc_id, _doc_hash(inst.doc), prompt_hash))
            if rec is None:  # a sample written by an older augury, under its doc_hash of the same record
                rec = stored.get((inst.doc_id, _legacy_doc_hash(inst.doc), prompt_hash))
                if rec is not None:
                    rec = {**rec, "doc_hash": _doc_hash(inst.doc)}
            if rec is None:
                todo.append(inst)
            else:
                done[inst.doc_id] = rec
        plan.append((cfg, path, done, todo))
    bar = _Progress(sum(len(t) for *_, t in plan), progress)
    out: dict[str, dict] = {}
    try:
        for cfg, path, done, todo in plan:
            start, errors, why = time.perf_counter(), 0, {}
            for i in range(0, len(todo), chunk_size):
                chunk = todo[i:i + chunk_size]
                finished = []
                # A graded task's grader judges a chunk's replies together (a local judge batches them).
                one_by_one = getattr(lm, "sequential", False) and cfg.kind != "graded"
                parts = [[inst] for inst in chunk] if one_by_one else [chunk]
                try:
                    for part in parts:
                        for rec in score_chunk(lm, cfg, part, chat, hidden_dirs=(data_dir, out_dir)):
                            if "error" in rec:
                                errors += 1
                                kind = error_kind(rec["error"])
                                why[kind] = why.get(kind, 0) + 1
                                continue
                            finished.append(_lm_eval_layout(rec, cfg))
                            done[rec["doc_id"]] = rec
                finally:  # also when the endpoint stops the run: what it answered before is kept
                    append_records(path, finished)
                bar.update(len(chunk), cfg.task)
            wanted = [inst.doc_id for inst in instances[cfg.task]]
            original = record_count(cfg, data_dir) if limit is not None else len(wanted)
            out[cfg.task] = {"samples": [_lm_eval_layout(done[d], cfg) for d in wanted if d in done], "errors": errors,
                             "error_kinds": why,
                             "instances": len(wanted), "original": original,
                             "seconds": time.perf_counter() - start, "resumed": len(wanted) - len(todo)}
            if bar.bar.disable and progress is not False:  # no live bar (a log file): one line per task
                print(f"augury eval: {cfg.task}: {len(out[cfg.task]['samples'])}/{len(wanted)} samples "
                      f"({out[cfg.task]['resumed']} resumed, {errors} errors) in "
                      f"{out[cfg.task]['seconds']:.1f} s", file=sys.stderr, flush=True)
    finally:
        bar.close()
    return out
