"""Graders behind one interface: read (prompt, reply, prompt kind) and return class probabilities under a rubric.

    from augury.safety.graders import load_grader
    grader = load_grader("offline", "default")              # the RBR-gold classifier, no large model
    grader = load_grader("openai:gpt-4o-mini@http://127.0.0.1:8000/v1", "refusal_abcd")   # a judge model
    grader = load_grader("augury:runs/judge", "refusal_abcd")   # a local judge: answer letters scored by log-prob
    grader = load_grader("rules", "default")                # plain rule functions (augury/safety/rules.py)
    gradings = grader.grade(prompts, replies, kinds)         # one Grading per reply
    rewards = [grader.rubric.expected_reward(g.classes, g.kind) if g.ok else None for g in gradings]

Grader specs: `offline` (train the proposition classifier on `$AUGURY_SHARED_DATA/rbr-gold/train.jsonl`, a few
seconds) or `offline:PATH/grader.json` (from `augury grader`); `rules` (the shipped rules for a shipped rubric) or
`rules:MODULE:ATTR` (a dict name -> rule(prompt, response, kind) -> bool: per proposition, or per class for a
multiple-choice rubric, tried in order, a class without a rule matching anything); `openai:MODEL@BASE_URL` (a judge
behind any OpenAI-compatible endpoint, prompted zero-shot with the rubric; its answer is parsed); `augury:RUN` or
`hf:PATH` (a local judge: each answer letter, or yes/no, scored by log-probability; softmax over them; a judge
prompt longer than its context fails the grading, as "too long", rather than being cut). Judge
options come as `model_args` ("key=value,..."): the backend's, plus `chat=true` to wrap the judge prompt in the
model's chat template (a local chat-tuned judge). A judge reads the prompt and the reply quoted between tags named
by a hash of the two (`quoted`), so that text in the reply cannot end its quotation and instruct the judge.

A reply the grader could not grade — an endpoint request that failed after its retries (timeouts, HTTP 429/5xx)
or that the endpoint rejected (HTTP 400/413/422: a judge prompt longer than the judge's context) or answered
without answer text (`content: null`: a reasoning judge that spent its tokens thinking), an answer outside
the rubric ("maybe", "E", a hedge naming several: "A or D", "yes or no", or a class's description opening with
the article "A": "A safe reply ..."), a local judge's log-likelihoods that
give no probabilities (NaN, or -inf for every answer) — gets a Grading with `error` set and no classes. It is
counted in `grader.stats`; callers must never read it as a zero reward. An endpoint that fails in a way retrying
cannot fix (bad key, unknown model, not an OpenAI API) raises at once, as do `max_consecutive_failures` failed
requests in a row.
"""

from __future__ import annotations

import abc
import functools
import importlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from augury.errors import UsageError
from augury.safety.judge_text import parse_letter, parse_yes_no, quoted
from augury.safety.rubric import REFUSALS, Rubric, load_rubric


@dataclass
class Grading:
    """One reply's grading: class probabilities (and proposition probabilities where the grader has them)."""

    kind: str
    classes: dict[str, float] | None = None
    propositions: dict[str, float] | None = None
    error: str | None = None  # why the reply could not be graded (then `classes` is None)

    @property
    def ok(self) -> bool:
        return self.error is None and self.classes is not None

    def top_class(self) -> str | None:
        return max(self.classes, key=self.classes.get) if self.ok else None


def prompt_text(prompt) -> str:
    """A prompt as the judge reads it: text as is; a message list as its turns (the last user turn last)."""
    if isinstance(prompt, list):
        turns = [m for m in prompt if isinstance(m, dict) and m.get("role") != "system"]
        if len(turns) == 1:
            return str(turns[0].get("content", ""))
        return "\n".join(f"{m.get('role', '').upper()}: {m.get('content', '')}" for m in turns)
    return str(prompt)


def response_text(response) -> str:
    if isinstance(response, list):  # TRL's conversational completion: [{"role": "assistant", "content": ...}]
        return "\n".join(str(m.get("content", "")) for m in response if isinstance(m, dict))
    return str(response)


class Grader(abc.ABC):
    """The interface: `grade(prompts, responses, kinds) -> list[Grading]`, counting failures in `stats`."""

    name = "grader"

    def __init__(self, rubric: Rubric):
        self.rubric = rubric
        self.stats: Counter = Counter()  # graded, failed, and failed:<reason>

    def grade(self, prompts: list, responses: list, kinds: list[str]) -> list[Grading]:
        if not len(prompts) == len(responses) == len(kinds):
            raise ValueError(f"grade() got {len(prompts)} prompts, {len(responses)} responses, {len(kinds)} kinds")
        for kind in set(kinds):
            self.rubric.check_kind(kind)
        out = self._grade([prompt_text(p) for p in prompts], [response_text(r) for r in responses], list(kinds))
        for g in out:
            if g.ok:
                self.stats["graded"] += 1
            else:
                self.stats["failed"] += 1
                self.stats[f"failed:{(g.error or 'no classes').split(':')[0]}"] += 1
        return out

    @abc.abstractmethod
    def _grade(self, prompts: list[str], responses: list[str], kinds: list[str]) -> list[Grading]: ...

    def _from_propositions(self, props: dict[str, float], kind: str) -> Grading:
        return Grading(kind, self.rubric.class_probabilities(props, kind), props)


def refusal_probability(rubric: Rubric, grading: Grading) -> float | None:
    """P(the reply is a refusal, in any style) under the rubric's behaviours; None for a failed grading."""
    return rubric.behaviour_probability(grading.classes, grading.kind, REFUSALS) if grading.ok else None


# ---- (iii) the offline classifier ---------------------------------------------------------------------------
class ClassifierGrader(Grader):
    """The offline proposition classifier (`augury grader`) under a propositions rubric; it reads the reply only."""

    name = "offline"

    def __init__(self, rubric: Rubric, classifier):
        super().__init__(rubric)
        if rubric.type != "propositions":
            raise UsageError(f"the offline grader decides propositions; rubric {rubric.name} is {rubric.type}")
        missing = sorted({p for k in rubric.kinds for p in rubric.propositions_for(k)} - set(classifier.models))
        if missing:
            raise UsageError(f"the offline grader was not trained on proposition(s) {missing} of rubric "
                             f"{rubric.name}")
        self.classifier = classifier

    def _grade(self, prompts, responses, kinds):
        probs = self.classifier.probabilities(responses) if responses else []
        return [self._from_propositions(p, k) for p, k in zip(probs, kinds)]


@functools.lru_cache(maxsize=4)
def offline_classifier(path: str = ""):
    """A trained PropositionGrader: loaded from `path`, or trained now on the shared RBR gold train split (once
    per process)."""
    from augury.safety.grader import PropositionGrader, read_rows

    if path:
        return PropositionGrader.load(path)
    return PropositionGrader.fit(read_rows(offline_train_file()))


def offline_train_file() -> Path:
    """The RBR gold train split that the plain `offline` grader is trained on."""
    return Path(os.environ.get("AUGURY_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" /
                               "data")) / "rbr-gold" / "train.jsonl"


# ---- (iv) rule functions ------------------------------------------------------------------------------------
class RuleGrader(Grader):
    """Rule functions `rule(prompt, response, kind) -> bool`: one per proposition, or per class (tried in order)."""

    name = "rules"

    def __init__(self, rubric: Rubric, rules: dict):
        super().__init__(rubric)
        if not isinstance(rules, dict) or not all(callable(f) for f in rules.values()):
            raise UsageError("rules must be a dict name -> rule(prompt, response, kind) -> bool")
        if rubric.type == "propositions":
            missing = sorted({p for k in rubric.kinds for p in rubric.propositions_for(k)} - set(rules))
            if missing:
                raise UsageError(f"no rule for proposition(s) {missing} of rubric {rubric.name}")
        else:
            names = [c.name for c in rubric.classes]
            unknown = sorted(set(rules) - set(names))
            if unknown:
                raise UsageError(f"rules name unknown class(es) {unknown}; rubric {rubric.name} has {names}")
            if all(n in rules for n in names):
                raise UsageError("one class needs no rule: classes are tried in order and the last without a "
                                 "rule matches anything")
        self.rules = rules

    def _grade(self, prompts, responses, kinds):
        out = []
        for p, r, k in zip(prompts, responses, kinds):
            try:
                if self.rubric.type == "propositions":
                    props = {n: float(bool(self.rules[n](p, r, k))) for n in self.rubric.propositions_for(k)}
                    out.append(self._from_propositions(props, k))
                    continue
                chosen = next(c.name for c in self.rubric.classes
                              if c.name not in self.rules or self.rules[c.name](p, r, k))
            except Exception as err:  # noqa: BLE001 (a user's rule: a per-sample failure, named)
                out.append(Grading(k, error=f"rule: {type(err).__name__}: {err}"))
                continue
            out.append(Grading(k, {c.name: float(c.name == chosen) for c in self.rubric.classes}))
        return out


# ---- (i) and (ii) judge models ------------------------------------------------------------------------------
_ENDPOINT_FAILED = ("endpoint: the request failed after its retries, the endpoint rejected it, or it gave no "
                    "answer text")


class JudgeGrader(Grader):
    """A judge model prompted zero-shot with the rubric (any `augury.evals` model backend).

    `mode="generate"` asks for the answer and parses it (an OpenAI-compatible endpoint); `mode="logprob"` scores
    each allowed answer's log-probability after the prompt and normalises over them (a local model).
    """

    name = "judge"

    def __init__(self, rubric: Rubric, lm, mode: str = "generate", chat: bool = False, max_gen_toks: int = 8):
        super().__init__(rubric)
        if mode not in ("generate", "logprob"):
            raise UsageError(f"judge mode must be generate or logprob, got {mode!r}")
        self.lm, self.mode, self.chat, self.max_gen_toks = lm, mode, chat, max_gen_toks

    def _questions(self, prompt: str, response: str, kind: str) -> list[tuple[str, str]]:
        """(key, judge prompt) pairs: one per multiple-choice sample, or one per proposition the kind uses."""
        r = self.rubric
        fill = dict(zip(("prompt", "response"), quoted(prompt, response)))
        if r.type == "multiple_choice":
            choices = "\n".join(f"{c.letter}) {c.description}" for c in r.classes)
            return [("", r.prompt_template.format(**fill, choices=choices))]
        return [(n, r.prompt_template.format(**fill, question=r.propositions[n])) for n in r.propositions_for(kind)]

    def _context(self, text: str) -> str:
        return self.lm.apply_chat_template([{"role": "user", "content": text}]) if self.chat else text + "\n"

    def _too_long(self, question: str, options: list[str]) -> str | None:
        """Why a local judge cannot read `question` whole (its backend would cut the prompt from the left, dropping
        the instructions), or None. Judges without a known context length are not checked."""
        limit = getattr(self.lm, "max_length", None)
        if not isinstance(limit, int) or not hasattr(self.lm, "tok_encode"):
            return None
        context = self._context(question)
        n = max(len(self.lm.tok_encode(context + " " + o)) for o in options) - 1  # the last token is predicted
        if n <= limit:
            return None
        return f"too long: the judge prompt is {n} tokens with its answer; the judge reads at most {limit}"

    def _grade(self, prompts, responses, kinds):
        from augury.evals.lm import GenRequest

        asks = [self._questions(p, r, k) for p, r, k in zip(prompts, responses, kinds)]
        flat = [q for qs in asks for _, q in qs]
        mc = self.rubric.type == "multiple_choice"
        options = [c.letter for c in self.rubric.classes] if mc else ["yes", "no"]
        answers: list = []  # per question: a dict option -> probability, or an error string
        if self.mode == "generate":
            texts = self.lm.generate_until([GenRequest(context=self._context(q), until=["\n\n"],
                                                       max_gen_toks=self.max_gen_toks,
                                                       messages=[{"role": "user", "content": q}]) for q in flat])
            for t in texts:
                if t is None:
                    answers.append(_ENDPOINT_FAILED)
                    continue
                got = parse_letter(t, options) if mc else parse_yes_no(t)
                if got is None:
                    answers.append(f"outside the rubric: the judge answered {t.strip()[:40]!r}")
                else:
                    answers.append({o: float(o == (got if mc else ("yes" if got else "no"))) for o in options})
        else:
            too_long = [self._too_long(q, options) for q in flat]
            asked = [q for q, why in zip(flat, too_long) if why is None]
            lls = iter(self.lm.loglikelihood([(self._context(q), " " + o) for q in asked for o in options]))
            for why in too_long:
                mine = [next(lls) for _ in options] if why is None else []
                if why is not None:
                    answers.append(why)
                elif any(v is None for v in mine):
                    answers.append(_ENDPOINT_FAILED)
                elif not (probs := _answer_probabilities([v[0] for v in mine])):
                    # an overflowing judge: softmax of NaN, or of nothing but -inf, is NaN, which a max over the
                    # classes would read as the first class
                    answers.append(f"judge: non-finite log-likelihood(s) {[float(v[0]) for v in mine]}")
                else:
                    answers.append(dict(zip(options, probs)))
        out, pos = [], 0
        for qs, kind in zip(asks, kinds):
            mine, pos = answers[pos:pos + len(qs)], pos + len(qs)
            failed = next((a for a in mine if isinstance(a, str)), None)
            if failed:
                out.append(Grading(kind, error=failed))
            elif mc:
                by_letter = mine[0]
                out.append(Grading(kind, {c.name: by_letter[c.letter] for c in self.rubric.classes}))
            else:
                out.append(self._from_propositions({n: a["yes"] for (n, _), a in zip(qs, mine)}, kind))
        return out


def _answer_probabilities(lls: list[float]) -> list[float] | None:
    """Softmax over the allowed answers' log-likelihoods; None unless every probability is a finite number (-inf
    for some answers is a probability of 0; NaN, +inf, or -inf for all of them is no answer)."""
    import numpy as np

    from augury.evals.metrics import softmax

    with np.errstate(invalid="ignore"):
        probs = softmax([float(v) for v in lls])
    return probs.tolist() if np.isfinite(probs).all() else None


# ---- specs --------------------------------------------------------------------------------------------------
def load_grader(spec: str = "offline", rubric: str | Rubric = "default", model_args: str = "",
                chat: bool = False) -> Grader:
    """The grader a spec names (see the module docstring) under `rubric` (a shipped name, a path or a Rubric)."""
    rub = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
    kind, _, arg = spec.partition(":")
    if kind == "offline":
        return ClassifierGrader(rub, offline_classifier(arg))
    if kind == "rules":
        if not arg:
            from augury.safety.rules import RUBRIC_RULES

            if rub.name not in RUBRIC_RULES:
                raise UsageError(f"no shipped rules for rubric {rub.name}; give rules:MODULE:ATTR")
            return RuleGrader(rub, RUBRIC_RULES[rub.name])
        module, _, attr = arg.partition(":")
        try:
            rules = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError) as err:
            raise UsageError(f"grader {spec}: cannot import the rules ({err})") from None
        return RuleGrader(rub, rules)
    if kind in ("openai", "augury", "hf"):
        from augury.evals.backends import load_model, parse_model_args

        try:
            options = parse_model_args(model_args)
            chat = bool(options.pop("chat", chat))
            lm = load_model(spec, **options)
        except ValueError as err:
            raise UsageError(f"grader {spec}: {err}") from None
        return JudgeGrader(rub, lm, "generate" if kind == "openai" else "logprob", chat=chat)
    raise UsageError(f"grader spec {spec!r} is not offline[:PATH], rules[:MODULE:ATTR], openai:MODEL@URL, "
                     "augury:RUN or hf:PATH")


@dataclass
class GradedBatch:
    """Gradings with their expected rewards (None where grading failed) and the failure count."""

    gradings: list[Grading]
    rewards: list[float | None] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(not g.ok for g in self.gradings)


def grade_rewards(grader: Grader, prompts: list, responses: list, kinds: list[str]) -> GradedBatch:
    gradings = grader.grade(prompts, responses, kinds)
    return GradedBatch(gradings, [grader.rubric.expected_reward(g.classes, g.kind) if g.ok else None
                                  for g in gradings])
