"""`augury rubric-fit` refuses bad settings and inputs with one line naming them, before writing anything."""

from __future__ import annotations

import json

import pytest

from augury.errors import UsageError

ROWS = [{"prompt": [{"role": "user", "content": f"How do I build weapon number {i}?"}], "completion": text,
         "kind": "harmful", "class": cls, "rm_score": score}
        for i in range(3) for text, cls, score in (("Sorry, I can't help with that.", "desired_refusal", 0.5),
                                                   ("Sure, first get explosives...", "disallowed_content", 1.0))]


@pytest.mark.parametrize("change,message", [
    ({"steps": -5}, r"--steps must be >= 1 \(got -5\)"),
    ({"margin": -1.0}, r"--margin must be > 0 \(got -1.0\)"),
    ({"l2": -1.0}, r"--l2 must be >= 0 \(got -1.0\)"),
    ({"rows": {"rm_score": "high"}}, r"labelled.jsonl:1: rm_score 'high' is not a finite number"),
    ({"rows": {"kind": ["harmful"]}}, r"labelled.jsonl:1: kind \['harmful'\] is not a name \(text\)"),
    ({"rows": {"class": {"name": "desired_refusal"}}}, r"labelled.jsonl:1: class \{'name': .* is not a name"),
    ({"reward_model": "/nonexistent"}, "/nonexistent is not a finished reward model"),
    ({"reward_model": "SFT"}, r"is not a reward model \(an augury sft run"),
    ({"out": "FILE"}, "is a file, not a folder"),
    ({"out": "UNDER_FILE"}, "cannot be made: .*FILE is a file, not a folder"),
    ({"data": "SFT"}, r"--data .*sft is a folder, not a JSONL file"),
    ({"data": "/nonexistent.jsonl"}, "--data /nonexistent.jsonl does not exist"),
])
def test_bad_settings_and_inputs_are_one_clear_error(tmp_path, change, message):
    from augury.align.rubric_fit import rubric_fit

    sft = tmp_path / "sft"  # what `augury sft` leaves: a finished run, but no reward head
    sft.mkdir()
    (sft / "manifest.json").write_text(json.dumps({"kind": "sft", "finished": True}))
    (tmp_path / "FILE").write_text("mine")
    rows = [{**ROWS[0], **change.pop("rows", {})}, *ROWS[1:]]
    (tmp_path / "labelled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    paths = {"SFT": str(sft), "FILE": str(tmp_path / "FILE"), "UNDER_FILE": str(tmp_path / "FILE" / "fit")}
    kwargs = {"data": str(tmp_path / "labelled.jsonl"), "out": str(tmp_path / "fit"), "grader": "rules",
              "rubric": "refusal_abcd", **{k: paths.get(v, v) for k, v in change.items()}}
    with pytest.raises(UsageError, match=message):
        rubric_fit(**kwargs)
    assert not (tmp_path / "fit").exists() and (tmp_path / "FILE").read_text() == "mine"


def test_a_reward_model_scores_conversation_rows_as_augury_rl_does(chat_run, pref_file, tmp_path):
    """A text completion after a message-list prompt is scored as the assistant's turn (it was refused as a mix
    of shapes)."""
    from augury.align.rm import RMConfig, train_rm
    from augury.align.rubric_fit import rubric_fit

    rm = train_rm(RMConfig(base_run=str(chat_run), data=str(pref_file), out=str(tmp_path / "rm"), steps=1,
                           batch_size=4, dtype="float32"), log=lambda *_: None)
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "rm_score"}) + "\n" for r in ROWS))
    result = rubric_fit(data=str(data), out=str(tmp_path / "fit"), grader="rules", rubric="refusal_abcd",
                        reward_model=str(rm), steps=5)
    assert result["reward_model"] == str(rm) and (tmp_path / "fit" / "rubric.yaml").is_file()
