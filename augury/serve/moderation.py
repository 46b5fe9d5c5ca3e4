"""Moderation: category scores in the OpenAI moderation schema, from a configured grader, and the policy that
says which categories are refused on the way in and on the way out.

    policy = ModerationPolicy.load(None)                 # the shipped default (default_policy.yaml)
    moderator = Moderator(policy)
    verdict = moderator.check("some text", stage="input")  # Verdict(flagged, refused, categories, scores)

A grader maps texts to per-category scores in [0, 1]. `RulesGrader` (regular expressions per category, case-
insensitive, `.` matching a line break too, from the policy file, over the text as a reader sees it: NFKC form,
no invisible format characters, look-alike Cyrillic/Greek letters as Latin, `augury.safety.rules.as_read`; each run
of white space one space; with and without combining marks: `readings`) needs no model; any object with `score(texts) ->
list[dict[str, float]]` can stand in its place. Rules catch explicit wording only: they miss paraphrases and flag
some benign quotations, so treat the flag rate as a floor and read `augury monitor`'s per-key figures with that in
mind.

In addition to the rules, the policy's `grader` block can name any grader of `augury.safety.graders` (the offline
classifier, rule functions, a judge model) and map the propositions it decides to moderation categories
(`SafetyGraderScores`); a category's score is then the higher of the two. Such a grader is slower than the rules, so
it reads a request's input and each reply once it is complete, not every streamed piece.

A streaming reply is checked at each new piece over a window of the text before it (`StreamWindow`): at least
`stream_window` characters as the rules read them, so padding the rules read as one space or as nothing (runs of white
space, zero-width characters, combining marks) does not carry the start of a phrase out of the window.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

import yaml

from augury.errors import UsageError
from augury.safety.rules import _TAGS, as_read, format_chars

# The categories of OpenAI's moderation endpoint (omni-moderation), in its order.
CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
              "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
              "violence/graphic")
DEFAULT_POLICY = Path(__file__).with_name("default_policy.yaml")


class Grader(Protocol):
    def score(self, texts: list[str]) -> list[dict[str, float]]: ...


@dataclass
class GraderPolicy:
    """A grader of augury.safety.graders used for moderation besides the rules.

    Args:
        spec: the grader (`offline`, `offline:PATH/grader.json`, `rules`, `rules:MODULE:ATTR`,
            `openai:MODEL@URL`, `augury:RUN`, `hf:PATH`); empty: rules only.
        rubric: the rubric whose propositions it decides (a shipped name or a YAML path).
        kind: the prompt kind it grades under (one of the rubric's kinds).
        categories: moderation category -> the proposition whose probability is its score.
    """

    spec: str = ""
    rubric: str = "default"
    kind: str = "harmful"
    categories: dict[str, str] = field(default_factory=lambda: {
        "harassment": "insulting_language", "harassment/threatening": "threatening_language",
        "illicit": "disallowed_content"})

    def validate(self) -> None:
        bad = [c for c in self.categories if c not in CATEGORIES]
        if bad:
            raise ValueError(f"grader.categories names unknown categories {bad}")
        if self.spec and not self.categories:
            raise ValueError("grader.categories must map at least one category to a proposition")


@dataclass
class ModerationPolicy:
    """What is flagged and what is refused.

    Args:
        refuse_input: categories that refuse a request before generation.
        refuse_output: categories that stop a reply (a stream ends with finish_reason "content_filter").
        threshold: a category is flagged when its score reaches this.
        refusal: the reply given instead: a short apology and a statement of inability, no lecture.
        rules: regular expressions per category for the rules grader.
        stream_window: a reply is checked at each new piece of text with at least this many characters of the
            text before it as the rules read it (StreamWindow; so the cost per piece does not grow with the reply),
            and over the whole reply once when it ends.
        grader: a safety grader besides the rules (GraderPolicy); none by default.
    """

    refuse_input: list[str] = field(default_factory=list)
    refuse_output: list[str] = field(default_factory=list)
    threshold: float = 0.5
    refusal: str = "I'm sorry, but I can't help with that."
    rules: dict[str, list[str]] = field(default_factory=dict)
    stream_window: int = 512
    grader: GraderPolicy = field(default_factory=GraderPolicy)

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
        try:
            grader = raw.pop("grader", None) or {}
            unknown = set(grader) - set(GraderPolicy.__dataclass_fields__) if isinstance(grader, dict) else {"?"}
            if unknown:
                raise ValueError(f"grader: unknown keys {sorted(unknown)} (or not a mapping)")
            policy = cls(**raw, grader=GraderPolicy(**grader))
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
        self.grader.validate()
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
        format_chars(), _padding()  # made once, when the server starts, not at its first request
        # DOTALL: a gap such as `.{0,40}` spans a line break, so a request split over lines is still matched
        flags = re.IGNORECASE | re.DOTALL
        self.compiled = {cat: re.compile("|".join(f"(?:{p})" for p in pats), flags)
                         for cat, pats in rules.items() if pats}
        # One pass over the text first: most texts match nothing, and a streamed reply is checked at every delta.
        self.any = re.compile("|".join(f"(?:{p.pattern})" for p in self.compiled.values()), flags)

    def score(self, texts: list[str]) -> list[dict[str, float]]:
        out = []
        for text in texts:
            read = readings(text)
            scores = dict.fromkeys(CATEGORIES, 0.0)
            if self.compiled and any(self.any.search(t) for t in read):
                for cat, pattern in self.compiled.items():
                    if any(pattern.search(t) for t in read):
                        scores[cat] = 1.0
            out.append(scores)
        return out


_SPACE = re.compile(r"\s+")


def readings(text: str) -> list[str]:
    """The forms of `text` the rules match: as a reader sees it (`as_read`), every run of white space one space (a
    pattern's space between two words also matches two spaces, a tab, or the line break joining two messages), with
    its accents and, when it has any, without them (a combining mark such as an accent or a strike-through on a
    letter hides the word from a pattern, not from a reader; a pattern that spells an accent still matches the
    first form)."""
    kept = _SPACE.sub(" ", as_read(text, keep_accents=True))
    dropped = _SPACE.sub(" ", as_read(text))
    return [kept] if dropped == kept else [kept, dropped]


# At most this many marks in a row are kept while streaming: a letter carries a few (Vietnamese two, a Hindi or
# Hebrew letter three), not hundreds.
MARKS_KEPT = 3


class _Padding(NamedTuple):
    run: re.Pattern  # a run of padding
    end: re.Pattern  # a run of padding that ends the text
    space: re.Pattern  # a character the rules read as white space
    parts: re.Pattern  # a run's marks on the character before it, and the rest
    # a translate table: padding, and the Hangul letters that join the letter before them into one, to "\x00"
    unread: dict[int, str]


@functools.cache
def _padding() -> _Padding:
    """The characters whose reading (`readings`, without accents) is white space, nothing (format characters), or
    nothing after a letter (combining marks)."""
    spaces, nothing, marks = [], [], []
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        cat = unicodedata.category(ch)
        # only these can read as nothing or as white space (tag characters read as the ASCII they encode)
        if (0xE0020 <= code < 0xE007F or cat == "Cs"
                or not (cat[0] in "MZ" or cat in ("Cf", "Cc") or ch.isspace() or unicodedata.decomposition(ch))):
            continue
        read = as_read(f"x{ch}x")[1:-1]
        if not read:
            (marks if cat[0] == "M" else nothing).append(code)
        elif read.isspace():
            spaces.append(code)

    def chars(codes: list[int]) -> str:
        runs: list[list[int]] = []
        for c in sorted(codes):
            if runs and runs[-1][1] == c - 1:
                runs[-1][1] = c
            else:
                runs.append([c, c])
        return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in runs)

    every = chars(spaces + nothing + marks)
    unread = {c: "\x00" for c in [*spaces, *nothing, *marks, *range(0x1160, 0x1200)]} | {0: "\x01"}
    return _Padding(re.compile(f"[{every}]+"), re.compile(f"[{every}]+\\Z"), re.compile(f"[{chars(spaces)}]"),
                    re.compile(f"([{chars(marks)}]*)(.*)", re.DOTALL), unread)


@functools.cache
def _last(count: int) -> re.Pattern:
    """`count` characters that read as one at least, with the padding among them (read through _Padding.unread:
    a large class of characters is slow to match)."""
    return re.compile(rf"(?:\x00*[^\x00]){{{count}}}")


class StreamWindow:
    """The text a streaming reply's check reads at each new piece: the piece with at least `window` characters of
    the reply before it as the rules read them (`readings`), however much padding the reply puts between words.

        window = StreamWindow(policy.stream_window)
        moderator.check(window.add(piece), "output")   # for each piece as it arrives

    The reply is kept with its padding made short as it arrives (`_shortened`), which the rules read as they read
    the whole reply, so the check costs about the same per piece however the reply is padded; only the look-back a
    later piece needs is kept."""

    def __init__(self, window: int):
        self.window, self.text = window, ""

    def add(self, piece: str) -> str:
        """The text to check once `piece` has arrived ("" for an empty piece)."""
        if not piece:
            return ""
        pad = _padding()
        # a run of padding that ends the text so far may go on in this piece: it is shortened again with it (a
        # shortened run is at most 2 * MARKS_KEPT characters)
        run = pad.end.search(self.text, max(0, len(self.text) - 2 * MARKS_KEPT - 1))
        start = run.start() if run else len(self.text)
        self.text = self.text[:start] + pad.run.sub(_shortened, self.text[start:] + piece.translate(_TAGS))
        # the look-back that reads as `window` characters at least: in plain ASCII, as shortened, each character
        # reads as itself (less a space at either end); else the last `window` characters other than padding
        lo = max(0, start - self.window - 2)
        if not self.text[lo:start].isascii():
            counted = _last(self.window).match(self.text[start - 1::-1].translate(pad.unread)) if start else None
            lo = start - counted.end() if counted else 0
        self.text = self.text[lo:]
        return self.text


def _shortened(run: re.Match) -> str:
    """A run of padding as a streaming reply keeps it: its marks on the letter before it (the first MARKS_KEPT),
    then one space where the rest reads as white space, else the rest's first MARKS_KEPT characters. Read without
    accents, that is the run as read; with them, a letter keeps its accents."""
    pad = _padding()
    marks, rest = pad.parts.fullmatch(run.group()).groups()
    return marks[:MARKS_KEPT] + (" " if pad.space.search(rest) else rest[:MARKS_KEPT])


class ModerationGraderError(RuntimeError):
    """A safety grader could not grade a text: the request fails rather than pass unchecked."""


class SafetyGraderScores:
    """A grader of augury.safety.graders as a moderation grader: a category's score is the probability of the
    proposition mapped to it. A text the grader fails on (a judge endpoint down, an answer outside the rubric)
    raises ModerationGraderError: moderation fails closed."""

    def __init__(self, grader, categories: dict[str, str], kind: str):
        known = set(grader.rubric.propositions) if getattr(grader.rubric, "propositions", None) else set()
        missing = sorted(set(categories.values()) - known)
        if missing:
            raise UsageError(f"moderation grader: rubric {grader.rubric.name} has no proposition(s) {missing}")
        grader.rubric.check_kind(kind)
        self.grader, self.categories, self.kind = grader, dict(categories), kind

    @classmethod
    def load(cls, cfg: GraderPolicy) -> SafetyGraderScores:
        from augury.safety.graders import load_grader

        try:
            grader = load_grader(cfg.spec, cfg.rubric)
            return cls(grader, cfg.categories, cfg.kind)
        except ValueError as err:
            raise UsageError(f"moderation grader {cfg.spec}: {err}") from None

    def score(self, texts: list[str]) -> list[dict[str, float]]:
        gradings = self.grader.grade([""] * len(texts), texts, [self.kind] * len(texts))
        out = []
        for g in gradings:
            if not g.ok or g.propositions is None:
                raise ModerationGraderError(f"moderation grader failed: {g.error or 'no propositions'}")
            out.append({cat: float(g.propositions.get(prop, 0.0)) for cat, prop in self.categories.items()})
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
    """The policy's rules (or `grader`), and the policy's safety grader where it names one (or `extra`)."""

    def __init__(self, policy: ModerationPolicy, grader: Grader | None = None, extra: Grader | None = None):
        self.policy = policy
        self.grader = grader if grader is not None else RulesGrader(policy.rules)
        if extra is None and policy.grader.spec:
            extra = SafetyGraderScores.load(policy.grader)
        self.extra = extra

    @property
    def name(self) -> str:
        return "augury-rules" + (f"+{self.policy.grader.spec or 'grader'}" if self.extra is not None else "")

    def check_many(self, texts: list[str], stage: Literal["input", "output", "none"] = "none",
                   final: bool = True) -> list[Verdict]:
        """Verdicts for `texts`; `final=False` (a piece of a reply still streaming) asks the rules only."""
        refused_cats = {"input": self.policy.refuse_input, "output": self.policy.refuse_output}.get(stage, [])
        verdicts = []
        extra = self.extra.score(texts) if self.extra is not None and final and texts else [{}] * len(texts)
        for scores, more in zip(self.grader.score(texts), extra):
            scores = {c: max(float(scores.get(c, 0.0)), float(more.get(c, 0.0))) for c in CATEGORIES}
            for cat in CATEGORIES:  # a subcategory implies its parent, as in OpenAI's schema
                if "/" in cat and scores[cat] > scores[cat.split("/")[0]]:
                    scores[cat.split("/")[0]] = scores[cat]
            if max(scores.values()) < self.policy.threshold:  # the common case, without a pass per category
                verdicts.append(Verdict(False, False, dict.fromkeys(CATEGORIES, False), scores))
                continue
            cats = {c: s >= self.policy.threshold for c, s in scores.items()}
            verdicts.append(Verdict(any(cats.values()), any(cats[c] for c in refused_cats), cats, scores))
        return verdicts

    def check(self, text: str, stage: Literal["input", "output", "none"] = "none") -> Verdict:
        return self.check_many([text], stage)[0]
