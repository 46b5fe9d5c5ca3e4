"""Moderation: category scores in the OpenAI moderation schema, from a configured grader, and the policy that
says which categories are refused on the way in and on the way out.

    policy = ModerationPolicy.load(None)                 # the shipped default (default_policy.yaml)
    moderator = Moderator(policy)
    verdict = moderator.check("some text", stage="input")  # Verdict(flagged, refused, categories, scores)

A grader maps texts to per-category scores in [0, 1]. `RulesGrader` (regular expressions per category, case-
insensitive, from the policy file) needs no model; any object with `score(texts) -> list[dict[str, float]]` can
stand in its place (a classifier or a judge model). Rules catch explicit wording only: they miss paraphrases and
flag some benign quotations, so treat the flag rate as a floor and read `augury monitor`'s per-key figures with that
in mind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import yaml

from augury.errors import UsageError

# The categories of OpenAI's moderation endpoint (omni-moderation), in its order.
CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
              "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
              "violence/graphic")
DEFAULT_POLICY = Path(__file__).with_name("default_policy.yaml")


class Grader(Protocol):
    def score(self, texts: list[str]) -> list[dict[str, float]]: ...


@dataclass
class ModerationPolicy:
    """What is flagged and what is refused.

    Args:
        refuse_input: categories that refuse a request before generation.
        refuse_output: categories that stop a reply (a stream ends with finish_reason "content_filter").
        threshold: a category is flagged when its score reaches this.
        refusal: the reply given instead: a short apology and a statement of inability, no lecture.
        rules: regular expressions per category for the rules grader.
        stream_window: a reply is checked at each new piece of text over its last this many characters (so the
            cost per piece does not grow with the reply), and over the whole reply once when it ends.
    """

    refuse_input: list[str] = field(default_factory=list)
    refuse_output: list[str] = field(default_factory=list)
    threshold: float = 0.5
    refusal: str = "I'm sorry, but I can't help with that."
    rules: dict[str, list[str]] = field(default_factory=dict)
    stream_window: int = 512

    @classmethod
    def load(cls, path: str | Path | None) -> ModerationPolicy:
        path = Path(path) if path else DEFAULT_POLICY
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise UsageError(f"cannot read moderation policy {path}: {err}") from None
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise UsageError(f"moderation policy {path}: unknown keys {sorted(unknown)}")
        policy = cls(**raw)
        try:
            policy.validate()
        except ValueError as err:
            raise UsageError(f"moderation policy {path}: {err}") from None
        return policy

    def validate(self) -> None:
        for name in ("refuse_input", "refuse_output"):
            bad = [c for c in getattr(self, name) if c not in CATEGORIES]
            if bad:
                raise ValueError(f"{name} names unknown categories {bad}; known: {', '.join(CATEGORIES)}")
        bad = [c for c in self.rules if c not in CATEGORIES]
        if bad:
            raise ValueError(f"rules name unknown categories {bad}")
        if not 0 < self.threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        if self.stream_window < 1:
            raise ValueError("stream_window must be >= 1")
        if not self.refusal.strip():
            raise ValueError("refusal must not be empty")
        for cat, patterns in self.rules.items():
            for p in patterns:
                try:
                    re.compile(p)
                except re.error as err:
                    raise ValueError(f"rule {p!r} for {cat}: {err}") from None


class RulesGrader:
    """Score 1.0 for a category when any of its patterns matches, else 0.0."""

    def __init__(self, rules: dict[str, list[str]]):
        self.compiled = {cat: re.compile("|".join(f"(?:{p})" for p in pats), re.IGNORECASE)
                         for cat, pats in rules.items() if pats}
        # One pass over the text first: most texts match nothing, and a streamed reply is checked at every delta.
        self.any = re.compile("|".join(f"(?:{p.pattern})" for p in self.compiled.values()), re.IGNORECASE)

    def score(self, texts: list[str]) -> list[dict[str, float]]:
        out = []
        for text in texts:
            scores = dict.fromkeys(CATEGORIES, 0.0)
            if self.compiled and self.any.search(text):
                for cat, pattern in self.compiled.items():
                    if pattern.search(text):
                        scores[cat] = 1.0
                # A subcategory implies its parent, as in OpenAI's schema.
                for cat in CATEGORIES:
                    if "/" in cat and scores[cat] > scores[cat.split("/")[0]]:
                        scores[cat.split("/")[0]] = scores[cat]
            out.append(scores)
        return out


@dataclass
class Verdict:
    flagged: bool
    refused: bool
    categories: dict[str, bool]
    scores: dict[str, float]

    def flagged_names(self) -> list[str]:
        return [c for c, v in self.categories.items() if v]


class Moderator:
    def __init__(self, policy: ModerationPolicy, grader: Grader | None = None):
        self.policy = policy
        self.grader = grader if grader is not None else RulesGrader(policy.rules)

    def check_many(self, texts: list[str], stage: Literal["input", "output", "none"] = "none") -> list[Verdict]:
        refused_cats = {"input": self.policy.refuse_input, "output": self.policy.refuse_output}.get(stage, [])
        verdicts = []
        for scores in self.grader.score(texts):
            scores = {c: float(scores.get(c, 0.0)) for c in CATEGORIES}
            if max(scores.values()) < self.policy.threshold:  # the common case, without a pass per category
                verdicts.append(Verdict(False, False, dict.fromkeys(CATEGORIES, False), scores))
                continue
            cats = {c: s >= self.policy.threshold for c, s in scores.items()}
            verdicts.append(Verdict(any(cats.values()), any(cats[c] for c in refused_cats), cats, scores))
        return verdicts

    def check(self, text: str, stage: Literal["input", "output", "none"] = "none") -> Verdict:
        return self.check_many([text], stage)[0]
