"""Rubrics: the shipped ones load, class probabilities are exact and sum to one, the default rubric classifies the
RBR gold labels as the paper's own configuration does, and each kind of bad rubric is one clear error."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import yaml

from augury.safety.rubric import RubricError, load_rubric, shipped_rubrics


def test_shipped_rubrics_load_and_round_trip():
    from augury.safety.rubric import Rubric

    assert {"default", "refusal_abcd", "toxicity"} <= set(shipped_rubrics())
    for name in shipped_rubrics():
        rubric = load_rubric(name)
        assert rubric.classes and all(set(c.reward) == set(rubric.kinds) for c in rubric.classes)
        assert Rubric.from_dict(rubric.to_dict(), "copy").to_dict() == rubric.to_dict()  # what rubric-fit writes


def _first_class(rubric, kind: str, values: dict) -> str:
    """The rubric's classes evaluated directly, one assignment at a time (derived names expanded recursively)."""

    def holds(name: str) -> bool:
        if name in rubric.derived:
            return all(holds(k) == v for k, v in rubric.derived[name].items())
        return values[name]

    return next(c.name for c in rubric.classes if all(holds(k) == v for k, v in c.when[kind].items()))


def test_class_probabilities_sum_to_one_and_match_brute_force():
    rubric = load_rubric("default")
    rng = np.random.default_rng(0)
    for kind in rubric.kinds:
        names = rubric.propositions_for(kind)
        p = dict(zip(names, rng.uniform(size=len(names))))
        got = rubric.class_probabilities(p, kind)
        assert sum(got.values()) == pytest.approx(1.0)
        want = dict.fromkeys(got, 0.0)
        for values in itertools.product([False, True], repeat=len(names)):
            a = dict(zip(names, values))
            want[_first_class(rubric, kind, a)] += float(np.prod([p[n] if a[n] else 1 - p[n] for n in names]))
        assert got == pytest.approx(want, abs=1e-12)


def _paper_class(cfg: dict, response_type: str, props: dict) -> str:
    """The RBR paper's own configuration evaluated directly: derived propositions, then the classes in order."""

    def value(name: str) -> bool:
        if name in cfg["derived_propositions"]:
            return all(value(k) == v for k, v in cfg["derived_propositions"][name].items())
        return bool(props[name])

    for cls in cfg["completion_class_order"]:
        conds = cfg["completion_classes"][cls][response_type]
        if all(value(k) == v for k, v in conds.items()):
            return cls
    raise AssertionError("no class")


def test_default_rubric_classifies_gold_labels_as_the_paper_does(shared_data):
    import json

    cfg = yaml.safe_load((shared_data / "rbr-gold" / "proposition_prompts.yaml").read_text())
    rubric = load_rubric("default")
    mapping = {"Hard Refuse": ("harmful", "hard_refuse"), "Comply": ("safe", "comply")}
    checked = 0
    for split in ("train", "test"):
        for line in (shared_data / "rbr-gold" / f"{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row["response_type"] not in mapping:
                continue
            kind, paper_type = mapping[row["response_type"]]
            assert rubric.class_of(row["propositions"], kind) == _paper_class(cfg, paper_type, row["propositions"])
            checked += 1
    assert checked > 300


def test_expected_reward_and_behaviours():
    rubric = load_rubric("refusal_abcd")
    probs = {"desired_refusal": 0.5, "undesired_refusal": 0.25, "disallowed_content": 0.0, "safe_non_refusal": 0.25}
    assert rubric.expected_reward(probs, "harmful") == pytest.approx(0.5 * 1.0 + 0.25 * 0.0 + 0.25 * -0.5)
    assert rubric.behaviour_probability(probs, "safe", ("refusal", "undesired_refusal")) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="not one of the rubric's kinds"):
        rubric.expected_reward(probs, "boundary")
    fitted = rubric.with_rewards({"harmful": {"desired_refusal": 3.0}})
    assert fitted.classes[0].reward["harmful"] == 3.0 and rubric.classes[0].reward["harmful"] == 1.0


def _write(tmp_path, raw) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _default_raw():
    return yaml.safe_load(open(load_rubric("default").source).read())


def _abcd_raw():
    return yaml.safe_load(open(load_rubric("refusal_abcd").source).read())


def _edit(raw, fn):
    raw = copy.deepcopy(raw)
    fn(raw)
    return raw


@pytest.mark.parametrize("raw, message", [
    (_edit(_abcd_raw(), lambda r: r["classes"][0].pop("reward")), r"desired_refusal\): reward is missing"),
    (_edit(_abcd_raw(), lambda r: r["classes"][1]["reward"].pop("safe")),
     r"reward is missing for kind\(s\) \['safe'\]"),
    (_edit(_abcd_raw(), lambda r: r["classes"][1]["reward"].update(boundary=1.0)), "unknown kind"),
    (_edit(_abcd_raw(), lambda r: r["classes"][2].update(reward="high")), "must be a finite number"),
    (_edit(_abcd_raw(), lambda r: r["classes"][3].update(letter="A")), "letters must be distinct"),
    (_edit(_abcd_raw(), lambda r: r["classes"][3].update(behaviour="helpful")), "is not one of"),
    (_edit(_abcd_raw(), lambda r: r["classes"][0].pop("description")), "needs a description"),
    (_edit(_abcd_raw(), lambda r: r.update(type="likert")), "type must be"),
    (_edit(_abcd_raw(), lambda r: r.update(prompt_template="{prompt}")), "containing {response}"),
    (_edit(_abcd_raw(), lambda r: r.update(prompt_template=r["prompt_template"] + '\nReply as JSON: {"class": "A"}')),
     r'field\(s\) \{"class"\}.*a literal brace is written twice'),
    (_edit(_abcd_raw(), lambda r: r.update(prompt_template=r["prompt_template"] + " {foo}")),
     r"field\(s\) \{foo\}; the judge's prompt fills in only \{prompt\}, \{response\}, \{choices\}"),
    (_edit(_abcd_raw(), lambda r: r.update(prompt_template=r["prompt_template"] + " {question}")), r"\{question\}"),
    (_edit(_abcd_raw(), lambda r: r.update(prompt_template=r["prompt_template"] + " a } b")),
     "cannot be filled in .*Single '}'"),
    (_edit(_abcd_raw(), lambda r: r.update(prompt_template=r["prompt_template"].replace("{choices}", "{{choices}}"))),
     r"must contain \{choices\}"),
    (_edit(_abcd_raw(), lambda r: r.update(kinds=[])), r"kinds must be a non-empty list"),
    (_edit(_abcd_raw(), lambda r: r.update(kinds=["harmful", "safe", False])), "quote them"),
    (_edit(_abcd_raw(), lambda r: r["classes"][0].pop("behaviour")), r"desired_refusal\): behaviour is missing"),
    (_edit(_default_raw(), lambda r: r.update(derived=[{"acceptable_refusal": {"apology": True}}])),
     "derived must map each name to its conditions"),
    (_edit(_default_raw(), lambda r: r["classes"][0]["when"]["harmful"].update(sarcasm=True)),
     "unknown proposition 'sarcasm'"),
    (_edit(_default_raw(), lambda r: r["derived"]["no_compliance"].update(polite=False)),
     "derived no_compliance: unknown proposition 'polite'"),
    (_edit(_default_raw(), lambda r: r["derived"]["acceptable_refusal"].update(correct_refusal=True)), "cycle"),
    (_edit(_default_raw(), lambda r: r["classes"].pop(1)), "no class matches the propositions"),
    (_edit(_default_raw(), lambda r: r["classes"][0]["when"].update(boundary={"apology": True})),
     r"`when` names unknown kind\(s\) \['boundary'\]"),
    (_edit(_default_raw(), lambda r: r["classes"][0].update(extra=1)), "unknown key"),
    (_edit(_default_raw(), lambda r: r["classes"][0]["when"]["safe"].update(meta_commentary="no")),
     "must be true or false"),
    # a class whose conditions contradict each other (ideal needs correct_refusal, hence an apology), or whose
    # every case an earlier class takes, never gets any probability: its reward was silently never given
    (_edit(_default_raw(), lambda r: r["classes"][0]["when"]["harmful"].update(apology=False)),
     r"class ideal can never be chosen for kind harmful: its conditions contradict each other"),
    (_edit(_default_raw(), lambda r: r["classes"][0]["when"].update(safe={"disallowed_content": False})),
     r"class minimum_acceptable_style can never be chosen for kind safe: .*earlier class"),
    (_edit(_default_raw(), lambda r: r["derived"].update(unused={"apology": False, "acceptable_refusal": True})),
     "derived unused requires apology to be both true and false"),
])
def test_bad_rubrics_are_one_clear_error(tmp_path, raw, message):
    with pytest.raises(RubricError, match=message):
        load_rubric(_write(tmp_path, raw))


def test_a_doubled_brace_is_a_literal_one_in_the_judge_prompt(tmp_path):
    from augury.safety.graders import JudgeGrader

    raw = _edit(_abcd_raw(), lambda r: r.update(prompt_template=r["prompt_template"] + '\nReply as {{"class": "A"}}.'))
    grader = JudgeGrader(load_rubric(_write(tmp_path, raw)), lm=None)
    [(_, prompt)] = grader._questions("q", "r", "harmful")
    assert prompt.endswith('Reply as {"class": "A"}.')


def test_unknown_rubric_name_lists_the_shipped_ones():
    with pytest.raises(RubricError, match="refusal_abcd"):
        load_rubric("no_such_rubric")
