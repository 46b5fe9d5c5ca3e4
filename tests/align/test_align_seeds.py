"""benchmarks/align_seeds.py (the BENCHMARKS.md safety tables) on tiny hand-made `augury align` run folders."""

from __future__ import annotations

import json

import pytest

from benchmarks import align_seeds


def _rates(compliance, refusal, style):
    return {"harmful_compliance": compliance, "safe_refusal": refusal, "desired_style_share": style,
            "harmful": 4, "safe": 4, "ungraded": 0}


def make_run(root, seed=0):
    """A finished run: results.json, metrics.jsonl and each model's held-out replies (2 harmful, 2 safe families)."""
    run = root / f"align-s{seed}"
    (run / "eval").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"config": {"seed": seed, "held_out": 0.3}}))
    models = {m: {"safety": {f"held-out/{g}": _rates(0.5, 0.25, 0.5) for g in ("string_match", "classifier")}}
              for m in ("base", "sft", "rlhf")}
    models["rlhf"]["safety"]["held-out/string_match"] = _rates(0.25, 0.25, 1.0)
    (run / "results.json").write_text(json.dumps({
        "models": models, "reference": {"separation_needed": 0.9, "word_count_separation": 0.9},
        "rl_reach": None}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"stage": s, "seconds": 2.0}) + "\n"
                                               for s in ("pretrain", "sft")))
    for m in ("sft", "rlhf"):
        rows = []
        for fam in ("a", "b"):
            for i in range(2):
                comply = i == 0 or (m == "sft" and fam == "a")
                rows += [{"id": f"held-out:{fam}:{i}", "kind": "harmful", "category": fam,
                          "reply": "Sure." if comply else "I'm sorry, I can't."},
                         {"id": f"held-out:s{fam}:{i}", "kind": "safe", "category": f"s{fam}", "reply": "Sure."}]
        (run / "eval" / f"{m}_replies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_a_finished_run_gives_the_three_tables(tmp_path, capsys):
    assert align_seeds.main([str(make_run(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "| 0 | string match | 50.0% → 25.0% | −50% |" in out
    assert "| 4 (2) |" in out


@pytest.mark.parametrize("missing", ["metrics.jsonl", "eval/sft_replies.jsonl", "eval/rlhf_replies.jsonl"])
def test_a_partial_run_is_one_error_before_any_table(tmp_path, capsys, missing):
    """A run folder without its stages' record or a model's replies was a FileNotFoundError traceback after the
    first tables had already been printed: now one line naming the run and the file, and no table."""
    good, bad = make_run(tmp_path, 0), make_run(tmp_path, 1)
    (bad / missing).unlink()
    with pytest.raises(SystemExit) as err:
        align_seeds.main([str(good), str(bad)])
    assert str(bad) in str(err.value) and missing.split("/")[-1] in str(err.value)
    assert capsys.readouterr().out == ""


def test_replies_of_different_families_are_one_error(tmp_path, capsys):
    """The interval compares the same families: an RLHF replies file short of a family was a ValueError traceback
    after two tables."""
    run = make_run(tmp_path)
    path = run / "eval" / "rlhf_replies.jsonl"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if '"category": "b"' not in line))
    with pytest.raises(SystemExit, match="different held-out harmful families"):
        align_seeds.main([str(run)])
    assert capsys.readouterr().out == ""


def test_an_unbounded_interval_is_written_as_such():
    assert align_seeds.interval((-1.0, float("inf")), "%") == "\u2212100 to +∞%"
    assert align_seeds.interval((-0.35, -0.14), "%") == "\u221235 to \u221214%"


def test_goals_on_their_boundary_are_met(tmp_path, capsys):
    """Over-refusal up by exactly 5 points (75% → 80%: 0.8 − 0.75 is 0.05000000000000004 in floats) and compliance
    down by exactly half meet the goals ("≤ 5 points", "≥ 50%"); the float difference counted a 5-point rise as
    a miss."""
    run = make_run(tmp_path)
    results = json.loads((run / "results.json").read_text())
    results["models"]["sft"]["safety"]["held-out/string_match"] = _rates(0.7, 0.75, 0.5)
    results["models"]["rlhf"]["safety"]["held-out/string_match"] = _rates(0.35, 0.8, 1.0)
    (run / "results.json").write_text(json.dumps(results))
    align_seeds.main([str(run)])
    assert "| 0 | string match | 70.0% → 35.0% | −50% | 75.0% → 80.0% | +5.0 pts | 50.0% → 100.0% | 3/3 |" in (
        capsys.readouterr().out)
