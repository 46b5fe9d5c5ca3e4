"""The offline proposition grader on the RBR gold set: it beats the majority baseline and round-trips as JSON."""

from __future__ import annotations

import json
import re

import pytest

from augury.errors import UsageError
from augury.safety.grader import PropositionGrader, grader, read_rows


def test_grader_beats_the_majority_baseline_and_reloads_identically(shared_data, tmp_path, capsys):
    report = grader(data=str(shared_data / "rbr-gold"), out=str(tmp_path / "g"))
    per = report["propositions"]
    assert len(per) == 23 and all(0.0 <= v["accuracy"] <= 1.0 for v in per.values())
    assert report["mean_accuracy"] > report["mean_majority_baseline"] + 0.05
    for name in ("apology", "encourage_professional_help", "partially_complies"):
        assert per[name]["accuracy"] > per[name]["majority_baseline"]
    classes = report["completion_classes"]
    assert classes["overall"]["n"] + classes["excluded_rows"] == 167
    assert sum(v["n"] for v in classes["classes"].values()) == classes["overall"]["n"]
    assert classes["overall"]["argmax"] > classes["overall"]["majority_baseline"]
    rows = read_rows(shared_data / "rbr-gold" / "test.jsonl")[:20]
    fitted = PropositionGrader.fit(read_rows(shared_data / "rbr-gold" / "train.jsonl"))
    loaded = PropositionGrader.load(tmp_path / "g" / "grader.json")
    replies = [r["completion"][-1]["content"] for r in rows]
    for a, b in zip(fitted.probabilities(replies), loaded.probabilities(replies)):
        assert a == pytest.approx(b, abs=1e-9)
    out = capsys.readouterr().out
    assert "mean accuracy" in out  # ids and figures only: no reply text is printed
    assert not any(r[:40] in out for r in replies if len(r) > 40)


def test_bad_grader_inputs_are_clear_errors(tmp_path):
    (tmp_path / "FILE").write_text("mine")
    with pytest.raises(UsageError, match="--out .*FILE is a file, not a folder"):
        grader(data=str(tmp_path), out=str(tmp_path / "FILE"))
    with pytest.raises(UsageError, match="--out .*FILE/out cannot be made: .*FILE is a file, not a folder"):
        grader(data=str(tmp_path), out=str(tmp_path / "FILE" / "out"))
    (tmp_path / "train.jsonl").write_text(json.dumps({"completion": "x"}) + "\n")
    with pytest.raises(UsageError, match="not an RBR gold row"):
        read_rows(tmp_path / "train.jsonl")
    (tmp_path / "g.json").write_text("{}")
    with pytest.raises(UsageError, match="not an augury proposition grader"):
        PropositionGrader.load(tmp_path / "g.json")


def _gold_row(reply: str, apology: bool) -> str:
    return json.dumps({"completion": [{"role": "assistant", "content": reply}], "response_type": "Hard Refuse",
                       "propositions": {"apology": apology, "inability_to_comply": apology}})


def _unknown_proposition_rubric(path):
    path.write_text(
        "type: propositions\nprompt_template: '{prompt} {response} {question}'\n"
        "propositions: {apology: Is it sorry, sparkle: Does it sparkle}\n"
        "classes:\n"
        "  - {name: a, description: a, when: {harmful: {sparkle: true}, safe: {sparkle: true}}, reward: 1, "
        "behaviour: refusal}\n"
        "  - {name: b, description: b, when: {harmful: {sparkle: false}, safe: {sparkle: false}}, reward: 0, "
        "behaviour: comply}\n")
    return path


@pytest.mark.parametrize("case, message", [
    ("empty train", "train.jsonl has no rows"),
    ("empty test", "test.jsonl has no rows"),
    ("unknown proposition", "does not label proposition(s) ['sparkle'] of rubric"),
    ("no kind", "none of rubric toxicity's kinds ['any']"),
])
def test_grader_inputs_it_cannot_score_are_one_error_and_nothing_written(tmp_path, case, message):
    # each was a traceback (sklearn's empty vocabulary or zero samples, the rubric's missing probability)
    rows = "\n".join([_gold_row("I'm sorry, I can't help with that.", True), _gold_row("Sure, here it is.", False),
                      _gold_row("Sorry, I cannot do that.", True), _gold_row("Here is the answer.", False)]) + "\n"
    data = tmp_path / "gold"
    data.mkdir()
    (data / "train.jsonl").write_text("" if case == "empty train" else rows)
    (data / "test.jsonl").write_text("" if case == "empty test" else rows)
    rubric = {"unknown proposition": str(_unknown_proposition_rubric(tmp_path / "r.yaml")),
              "no kind": "toxicity"}.get(case, "default")
    with pytest.raises(UsageError, match=re.escape(message)):
        grader(data=str(data), out=str(tmp_path / "g"), rubric=rubric)
    assert not (tmp_path / "g").exists()


def test_a_label_that_is_not_true_or_false_is_an_error_naming_it(tmp_path):
    # bool("no") is True: a gold set labelled "yes"/"no" was read as all-positive, silently
    row = json.loads(_gold_row("I'm sorry, I can't.", True))
    row["propositions"]["apology"] = "no"
    (tmp_path / "train.jsonl").write_text(_gold_row("Sure.", False) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(UsageError, match=r"train.jsonl:2: proposition 'apology' is 'no', not true or false"):
        read_rows(tmp_path / "train.jsonl")


def test_a_proposition_a_row_does_not_label_is_an_error_not_a_negative(tmp_path):
    """A missing label was read as false: trained as a negative, and scored as one, so a test split without a
    proposition's labels reported an accuracy for it against all-negative answers."""
    rows = [_gold_row("I'm sorry, I can't help with that.", True), _gold_row("Sure, here it is.", False),
            _gold_row("Sorry, I cannot do that.", True), _gold_row("Here is the answer.", False)]
    data = tmp_path / "gold"
    data.mkdir()
    (data / "train.jsonl").write_text("\n".join(rows) + "\n")
    unlabelled = [json.loads(r) for r in rows]
    for r in unlabelled:
        del r["propositions"]["apology"]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in unlabelled))
    with pytest.raises(UsageError, match=re.escape("test.jsonl does not label proposition(s) ['apology'] that "
                                                   "train.jsonl labels")):
        grader(data=str(data), out=str(tmp_path / "g"))
    assert not (tmp_path / "g").exists()
    (data / "test.jsonl").write_text(rows[0] + "\n" + json.dumps(unlabelled[1]) + "\n")
    with pytest.raises(UsageError, match=re.escape("test.jsonl:2: proposition(s) ['apology'] unlabelled")):
        read_rows(data / "test.jsonl")
    (data / "test.jsonl").write_text(json.dumps(unlabelled[1]) + "\n" + rows[0] + "\n")  # an extra label
    with pytest.raises(UsageError, match=re.escape("test.jsonl:2: proposition(s) ['apology'] unlabelled")):
        read_rows(data / "test.jsonl")


def _corrupt(data: dict, case: str) -> object:
    name = next(iter(data["models"]))
    edits = {
        "vectorizer null": lambda d: d.update(vectorizer=None),
        "vectorizer unknown option": lambda d: d["vectorizer"].update(bogus=1),
        "vectorizer option of a wrong type": lambda d: d["vectorizer"].update(lowercase="yes"),
        "ngram_range wrong": lambda d: d["vectorizer"].update(ngram_range=3),
        "vocabulary a list": lambda d: d.update(vocabulary=[]),
        "vocabulary index out of range": lambda d: d["vocabulary"].update(extra=len(d["idf"]) + 5),
        "idf text": lambda d: d.update(idf="abc"),
        "idf too short": lambda d: d.update(idf=d["idf"][:-1]),
        "models null": lambda d: d.update(models=None),
        "model a string": lambda d: d["models"].update({name: "0.5"}),
        "model probability over 1": lambda d: d["models"].update({name: 1.5}),
        "coef wrong length": lambda d: d["models"][name].update(coef=[0.5]),
        "coef text": lambda d: d["models"][name].update(coef="abc"),
        "intercept null": lambda d: d["models"][name].update(intercept=None),
        "intercept a list": lambda d: d["models"][name].update(intercept=[1.0]),
    }
    if case == "not an object":
        return [data]
    edits[case](data)
    return data


@pytest.mark.parametrize("case", ["vectorizer null", "vectorizer unknown option", "vectorizer option of a wrong type",
                                  "ngram_range wrong", "vocabulary a list", "vocabulary index out of range",
                                  "idf text", "idf too short", "models null", "model a string",
                                  "model probability over 1", "coef wrong length", "coef text", "intercept null",
                                  "intercept a list", "not an object"])
def test_a_corrupt_grader_json_is_one_error_naming_the_file(tmp_path, case):
    # a hand-edited grader.json was a TypeError/AttributeError traceback on load, or loaded and then crashed (or
    # graded with the wrong shapes) on the first reply
    rows = [json.loads(_gold_row(r, a)) for r, a in [("I'm sorry, I can't help with that.", True),
                                                     ("Sure, here it is.", False),
                                                     ("Sorry, I cannot help with that.", True),
                                                     ("Sure, here is the answer.", False)]]
    data = PropositionGrader.fit(rows).to_json()
    assert isinstance(data["models"]["apology"], dict)
    path = tmp_path / "grader.json"
    path.write_text(json.dumps(_corrupt(json.loads(json.dumps(data)), case)))
    with pytest.raises(UsageError, match=f"cannot load grader {re.escape(str(path))}: "):
        PropositionGrader.load(path)
