"""Rubrics: what a grader decides about a reply, and the reward of each outcome for each prompt kind.

    rubric = load_rubric("default")                  # a shipped rubric (augury/safety/rubrics/NAME.yaml) or a path
    rubric.class_probabilities({"apology": 0.9, ...}, "harmful")   # proposition rubric: P(class) per class
    rubric.expected_reward({"ideal": 0.8, ...}, "harmful")          # sum over classes of P(class) * reward

Two forms (docs/safety.md has the full schema):

- `type: multiple_choice` — the GPT-4 report's rule-based reward model: a judge reads the prompt, the reply and a
  list of lettered classes (A: refusal in the desired style, B: refusal in an undesired style, C: disallowed
  content, D: safe non-refusal) and picks one.
- `type: propositions` — the RBR paper's scheme: yes/no propositions about the reply (apology, inability to
  comply, judgement, disallowed content, ...), optional `derived` propositions (conjunctions of others), and
  classes defined per prompt kind by conditions on them. A class's probability is computed exactly from the
  proposition probabilities taken as independent: every assignment of the propositions a kind uses goes to the
  first class (in file order) whose conditions it meets; the rubric is refused unless every assignment meets one.

Every class has a reward per prompt kind (`harmful`, `safe`, or the kinds the rubric lists) and a `behaviour` per
kind (refusal, undesired_refusal, comply, disallowed, other), which the safety evaluations count.
"""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from augury.errors import UsageError

BEHAVIOURS = ("refusal", "undesired_refusal", "comply", "disallowed", "other")
REFUSALS = ("refusal", "undesired_refusal")
RUBRIC_DIR = Path(__file__).resolve().parent / "rubrics"
MAX_PROPOSITIONS_PER_KIND = 20  # exact class probabilities enumerate 2**n assignments


class RubricError(UsageError):
    """A rubric file is wrong (the message names the file and the key)."""


@dataclass
class RubricClass:
    """One completion class."""

    name: str
    letter: str  # multiple choice: the answer letter (A, B, ...)
    description: str  # what the judge reads for this class
    reward: dict[str, float]  # prompt kind -> reward
    behaviour: dict[str, str]  # prompt kind -> one of BEHAVIOURS
    when: dict[str, dict[str, bool]] = field(default_factory=dict)  # propositions: kind -> {proposition: value}


@dataclass
class Rubric:
    """A validated rubric (build it with `load_rubric` or `Rubric.from_dict`)."""

    name: str
    type: Literal["multiple_choice", "propositions"]
    kinds: list[str]
    classes: list[RubricClass]
    propositions: dict[str, str]  # simple proposition -> the yes/no question a judge is asked
    derived: dict[str, dict[str, bool]]  # derived proposition -> conditions (a conjunction)
    prompt_template: str  # the judge's prompt: {prompt}, {response}, and {choices} or {question}
    source: str = ""
    _tables: dict = field(default_factory=dict, repr=False)  # kind -> (propositions, assignments, class index)

    # ---- loading ---------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict, source: str = "<rubric>") -> Rubric:
        if not isinstance(raw, dict):
            raise RubricError(f"{source}: a rubric is a YAML mapping")
        known = {"name", "type", "kinds", "classes", "propositions", "derived", "prompt_template"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise RubricError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
        rtype = raw.get("type")
        if rtype not in ("multiple_choice", "propositions"):
            raise RubricError(f"{source}: type must be multiple_choice or propositions, got {rtype!r}")
        kinds = raw["kinds"] if "kinds" in raw else ["harmful", "safe"]
        if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) and k for k in kinds) or len(
                set(kinds)) != len(kinds):
            yaml_bool = isinstance(kinds, list) and any(isinstance(k, bool) for k in kinds)
            raise RubricError(f"{source}: kinds must be a non-empty list of distinct names (leave the key out for "
                              f"[harmful, safe]), got {kinds!r}"
                              + ("; YAML reads unquoted no/yes/on/off as false/true: quote them" if yaml_bool else ""))
        template = raw.get("prompt_template")
        _check_template(template, rtype, source)
        props = raw.get("propositions") or {}
        derived = raw.get("derived") or {}
        if not isinstance(derived, dict):
            raise RubricError(f"{source}: derived must map each name to its conditions (name: {{proposition: "
                              f"true/false, ...}}), got {type(derived).__name__} {derived!r:.80}")
        if rtype == "multiple_choice" and (props or derived):
            raise RubricError(f"{source}: a multiple_choice rubric has no propositions or derived propositions")
        if rtype == "propositions" and not props:
            raise RubricError(f"{source}: a propositions rubric needs `propositions` (name: yes/no question)")
        if not isinstance(props, dict) or not all(isinstance(q, str) and q.strip() for q in props.values()):
            raise RubricError(f"{source}: propositions must map each name to its yes/no question")
        clash = sorted(set(props) & set(derived) | (set(props) | set(derived)) & set(kinds))
        if clash:
            raise RubricError(f"{source}: names used twice (propositions, derived, kinds): {clash}")
        for name, conds in derived.items():
            _check_conditions(conds, set(props) | set(derived) - {name}, f"{source}: derived {name}")
        _check_acyclic(derived, source)
        raw_classes = raw.get("classes")
        if not isinstance(raw_classes, list) or len(raw_classes) < 2:
            raise RubricError(f"{source}: classes must be a list of at least two classes")
        classes = [_build_class(c, i, rtype, kinds, set(props) | set(derived), f"{source}: classes[{i}]")
                   for i, c in enumerate(raw_classes)]
        for attr in ("name", "letter"):
            seen = [getattr(c, attr) for c in classes]
            dup = sorted({v for v in seen if seen.count(v) > 1})
            if dup:
                raise RubricError(f"{source}: class {attr}s must be distinct; repeated: {dup}")
        rubric = cls(str(raw.get("name") or Path(source).stem), rtype, list(kinds), classes, dict(props),
                     dict(derived), template, source)
        if rtype == "propositions":
            for name in derived:
                rubric._flatten(name)  # a contradiction in one that no class uses yet is an error too
            for kind in kinds:
                rubric._table(kind)  # builds and checks coverage now, not at the first grading
        return rubric

    # ---- propositions -> classes -----------------------------------------------------------------------------
    def expand(self, conditions: dict[str, bool]) -> list[tuple[dict[str, bool], bool]]:
        """A condition set as (simple-proposition literals, negated?) terms: derived names become conjunctions."""
        terms = []
        for name, value in conditions.items():
            if name in self.derived:
                terms.append((self._flatten(name), not value))
            else:
                terms.append(({name: bool(value)}, False))
        return terms

    def _flatten(self, name: str) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for sub, value in self.derived[name].items():
            if sub in self.derived:
                if not value:
                    raise RubricError(f"{self.source}: derived {name} negates derived {sub}; only a class's "
                                      "conditions may negate a derived proposition")
                parts = self._flatten(sub)
            else:
                parts = {sub: bool(value)}
            for k, v in parts.items():
                if out.get(k, v) != v:
                    raise RubricError(f"{self.source}: derived {name} requires {k} to be both true and false")
                out[k] = v
        return out

    def propositions_for(self, kind: str) -> list[str]:
        """The simple propositions the classes of `kind` depend on (what a grader must decide), sorted."""
        names = set()
        for c in self.classes:
            for lits, _ in self.expand(c.when.get(kind, {})):
                names |= set(lits)
        return sorted(names)

    def _table(self, kind: str):
        if kind in self._tables:
            return self._tables[kind]
        names = self.propositions_for(kind)
        if len(names) > MAX_PROPOSITIONS_PER_KIND:
            raise RubricError(f"{self.source}: kind {kind} uses {len(names)} propositions; at most "
                              f"{MAX_PROPOSITIONS_PER_KIND} are supported")
        assignments = np.array(list(itertools.product([False, True], repeat=len(names))), dtype=bool).reshape(
            -1, len(names))
        col = {n: i for i, n in enumerate(names)}
        owner = np.full(len(assignments), -1)
        for ci, c in enumerate(self.classes):
            if kind not in c.when:
                continue
            ok = np.ones(len(assignments), dtype=bool)
            for lits, negated in self.expand(c.when[kind]):
                term = np.ones(len(assignments), dtype=bool)
                for k, v in lits.items():
                    term &= assignments[:, col[k]] == v
                ok &= ~term if negated else term
            # a class no case reaches would silently never get probability, nor its reward
            if not (ok & (owner < 0)).any():
                why = ("its conditions contradict each other (no yes/no answers meet them all)" if not ok.any()
                       else "every case its conditions meet is taken by an earlier class (classes are tried in "
                            "file order)")
                raise RubricError(f"{self.source}: class {c.name} can never be chosen for kind {kind}: {why}")
            owner[(owner < 0) & ok] = ci
        if (owner < 0).any():
            example = {n: bool(v) for n, v in zip(names, assignments[int(np.argmax(owner < 0))])}
            raise RubricError(f"{self.source}: for kind {kind}, no class matches the propositions {example}; "
                              "the classes of each kind must cover every case")
        self._tables[kind] = (names, assignments, owner)
        return self._tables[kind]

    def class_probabilities(self, propositions: dict[str, float], kind: str) -> dict[str, float]:
        """P(class) for each class, from independent proposition probabilities (exact over all assignments)."""
        self.check_kind(kind)
        if self.type != "propositions":
            raise ValueError(f"rubric {self.name} is multiple_choice: its classes are not built from propositions")
        names, assignments, owner = self._table(kind)
        missing = [n for n in names if n not in propositions]
        if missing:
            raise ValueError(f"no probability for proposition(s) {missing}")
        p = np.clip(np.array([float(propositions[n]) for n in names]), 0.0, 1.0)
        weights = np.where(assignments, p, 1.0 - p).prod(axis=1) if names else np.ones(1)
        mass = np.bincount(owner, weights=weights, minlength=len(self.classes))
        return {c.name: float(m) for c, m in zip(self.classes, mass)}

    def class_of(self, propositions: dict[str, bool], kind: str) -> str:
        """The class a set of yes/no answers falls into (e.g. human labels)."""
        probs = self.class_probabilities({k: float(bool(v)) for k, v in propositions.items()}, kind)
        return max(probs, key=probs.get)

    # ---- rewards and behaviours ------------------------------------------------------------------------------
    def check_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            raise ValueError(f"prompt kind {kind!r} is not one of the rubric's kinds {self.kinds}")

    def expected_reward(self, class_probs: dict[str, float], kind: str) -> float:
        """Sum over classes of P(class) x the class's reward for `kind` (probabilities renormalised)."""
        self.check_kind(kind)
        total = sum(class_probs.values())
        if not total > 0:
            raise ValueError("class probabilities sum to zero")
        return float(sum(class_probs.get(c.name, 0.0) * c.reward[kind] for c in self.classes) / total)

    def behaviour_probability(self, class_probs: dict[str, float], kind: str, behaviours) -> float:
        """P(the reply's class has one of `behaviours` for this kind), e.g. REFUSALS for the refusal rate."""
        total = sum(class_probs.values()) or 1.0
        return float(sum(class_probs.get(c.name, 0.0) for c in self.classes if c.behaviour[kind] in behaviours)
                     / total)

    def classes_with(self, kind: str, behaviour: str) -> list[str]:
        return [c.name for c in self.classes if c.behaviour[kind] == behaviour]

    def with_rewards(self, rewards: dict[str, dict[str, float]]) -> Rubric:
        """A copy whose class rewards are replaced by rewards[kind][class] (e.g. fitted ones)."""
        import copy

        out = copy.deepcopy(self)
        for c in out.classes:
            for kind in out.kinds:
                if c.name in rewards.get(kind, {}):
                    c.reward[kind] = float(rewards[kind][c.name])
        return out

    def to_dict(self) -> dict:
        classes = []
        for c in self.classes:
            d = {"name": c.name, "description": c.description, "reward": dict(c.reward),
                 "behaviour": dict(c.behaviour)}
            if self.type == "multiple_choice":
                d["letter"] = c.letter
            else:
                d["when"] = {k: dict(v) for k, v in c.when.items()}
            classes.append(d)
        out = {"name": self.name, "type": self.type, "kinds": list(self.kinds), "prompt_template":
               self.prompt_template, "classes": classes}
        if self.type == "propositions":
            out |= {"propositions": dict(self.propositions), "derived": {k: dict(v) for k, v in self.derived.items()}}
        return out


def _check_template(template, rtype: str, source: str) -> None:
    """The judge's prompt must fill in: only the rubric's fields, and a literal brace written twice."""
    if not isinstance(template, str) or "{response}" not in template:
        raise RubricError(f"{source}: prompt_template must be text containing {{response}}")
    fields = {"prompt": "", "response": "", "choices" if rtype == "multiple_choice" else "question": ""}
    allowed = ", ".join("{" + f + "}" for f in fields)
    hint = "a literal brace is written twice ({{ and }}, e.g. {{\"class\": \"A\"}})"
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        unknown = sorted(used - set(fields))
        if unknown:
            raise RubricError(f"{source}: prompt_template has the field(s) "
                              f"{', '.join('{' + u + '}' for u in unknown)}; the judge's prompt fills in only "
                              f"{allowed}, and {hint}")
        template.format(**fields)
    except (ValueError, IndexError, KeyError) as err:
        raise RubricError(f"{source}: prompt_template cannot be filled in ({err}); it may use {allowed}, and "
                          f"{hint}") from None
    missing = sorted(set(fields) - used)
    if missing:
        raise RubricError(f"{source}: a {rtype} rubric's prompt_template must contain "
                          f"{', '.join('{' + m + '}' for m in missing)}")


def _check_conditions(conds, names: set[str], where: str) -> None:
    if not isinstance(conds, dict) or not conds:
        raise RubricError(f"{where}: conditions must be a mapping proposition: true/false")
    for name, value in conds.items():
        if name not in names:
            raise RubricError(f"{where}: unknown proposition {name!r}")
        if not isinstance(value, bool):
            raise RubricError(f"{where}: {name} must be true or false, got {value!r}")


def _check_acyclic(derived: dict, source: str) -> None:
    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise RubricError(f"{source}: derived propositions refer to each other in a cycle: "
                              f"{' -> '.join(path + (name,))}")
        for sub in derived.get(name, {}):
            if sub in derived:
                visit(sub, path + (name,))

    for name in derived:
        visit(name, ())


def _per_kind(value, kinds: list[str], where: str, what: str) -> dict:
    """A value for every kind: one value for all kinds, or a mapping kind -> value naming each kind."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(kinds))
        if unknown:
            raise RubricError(f"{where}: {what} names unknown kind(s) {unknown}; the rubric's kinds: {kinds}")
        missing = [k for k in kinds if k not in value]
        if missing:
            raise RubricError(f"{where}: {what} is missing for kind(s) {missing}")
        return dict(value)
    if value is None:
        raise RubricError(f"{where}: {what} is missing (give one value or one per kind: {kinds})")
    return {k: value for k in kinds}


def _build_class(raw, index: int, rtype: str, kinds: list[str], names: set[str], where: str) -> RubricClass:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise RubricError(f"{where}: a class is a mapping with a name")
    known = {"name", "letter", "description", "reward", "behaviour", "when"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise RubricError(f"{where} ({raw['name']}): unknown key(s) {unknown}; known: {sorted(known)}")
    where = f"{where} ({raw['name']})"
    rewards = _per_kind(raw.get("reward"), kinds, where, "reward")
    for kind, r in rewards.items():
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not np.isfinite(r):
            raise RubricError(f"{where}: reward for {kind} must be a finite number, got {r!r}")
    # what the safety evaluations count (a refusal, disallowed content): a default would miscount silently
    behaviour = _per_kind(raw.get("behaviour"), kinds, where, "behaviour")
    for kind, b in behaviour.items():
        if b not in BEHAVIOURS:
            raise RubricError(f"{where}: behaviour {b!r} for {kind} is not one of {BEHAVIOURS}")
    letter = str(raw.get("letter") or chr(ord("A") + index))
    description = str(raw.get("description") or "")
    when: dict[str, dict[str, bool]] = {}
    if rtype == "multiple_choice":
        if "when" in raw:
            raise RubricError(f"{where}: `when` belongs to propositions rubrics")
        if not description:
            raise RubricError(f"{where}: a multiple-choice class needs a description (the judge reads it)")
        if len(letter) != 1 or not letter.isalpha() or not letter.isupper():
            raise RubricError(f"{where}: letter must be one capital letter, got {letter!r}")
    else:
        raw_when = raw.get("when")
        if not isinstance(raw_when, dict) or not raw_when:
            raise RubricError(f"{where}: a propositions class needs `when`: kind -> conditions")
        unknown_kinds = sorted(set(raw_when) - set(kinds))
        if unknown_kinds:
            raise RubricError(f"{where}: `when` names unknown kind(s) {unknown_kinds}; the rubric's kinds: {kinds}")
        for kind, conds in raw_when.items():
            _check_conditions(conds, names, f"{where}: when.{kind}")
            when[kind] = {k: bool(v) for k, v in conds.items()}
    return RubricClass(raw["name"], letter, description, {k: float(v) for k, v in rewards.items()}, behaviour,
                       when)


def shipped_rubrics() -> list[str]:
    return sorted(p.stem for p in RUBRIC_DIR.glob("*.yaml"))


def rubric_file(name_or_path: str | Path = "default") -> Path:
    """The YAML file a rubric spec names: a shipped rubric's, or the path itself (which may not exist)."""
    path = Path(name_or_path)
    if not path.suffix and (RUBRIC_DIR / f"{name_or_path}.yaml").is_file():
        path = RUBRIC_DIR / f"{name_or_path}.yaml"
    return path


def load_rubric(name_or_path: str | Path = "default") -> Rubric:
    """A shipped rubric by name (`default`, `refusal_abcd`, `toxicity`) or a YAML file."""
    path = rubric_file(name_or_path)
    if not path.is_file():
        raise RubricError(f"rubric {str(name_or_path)!r} is neither a file nor a shipped rubric "
                          f"({', '.join(shipped_rubrics())})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RubricError(f"{path}: not valid YAML ({err})") from None
    return Rubric.from_dict(raw, str(path))
