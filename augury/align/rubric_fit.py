"""`augury rubric-fit`: fit a rubric's class rewards so that RM score + class reward orders completions as the
rubric ranks their classes (the RBR paper's hinge loss; the math is `augury.safety.fit`).

    augury rubric-fit --data labelled.jsonl --rubric default --grader offline --reward_model runs/rm --out runs/rbr
    augury rl ... --grader offline --rubric runs/rbr/rubric.yaml

DATA rows: `prompt` (text or a message list), `completion` (text), `kind` (one of the rubric's kinds) and `class`
(the completion's gold class, e.g. written to be an ideal refusal), optionally `rm_score`. Completions of the same
prompt form a group; pairs are ordered by the rubric's class rewards. The reward-model score comes from
`--reward_model` (an `augury rm` folder), else from every row's `rm_score`, else it is 0. A share of the prompts
(`--held_out`, 0.1 by default; 0 for none) is held out of the fit, chosen by `--seed`, and the ordering is reported
on their pairs too: on the pairs fitted it says little about new completions. OUT gets `rubric.yaml` (the rubric
with the fitted rewards) and `report.json` (pairs, ordering accuracy and hinge loss before and after on the fitted
and on the held-out pairs, the grader's confusion, the rewards, and every pair of classes whose fitted rewards
invert the rubric's order, with a warning that is printed too). It prints class names and figures only.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import yaml

from augury.errors import UsageError
from augury.io import atomic_write_json, atomic_write_text, jsonl_objects, not_a_folder, utc_now


def _rows(path: str) -> list[dict]:
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"--data {path} is a folder, not a JSONL file")
    if not p.is_file():
        raise UsageError(f"--data {path} does not exist")
    rows = []
    for i, row in jsonl_objects(p.read_text(encoding="utf-8"), path, UsageError):
        missing = [k for k in ("prompt", "completion", "kind", "class") if k not in row]
        if missing:
            raise UsageError(f"{path}:{i}: missing {missing} (rows need prompt, completion, kind, class)")
        for key in ("kind", "class"):  # names the rubric lists, compared and grouped as text
            if not isinstance(row[key], str):
                raise UsageError(f"{path}:{i}: {key} {row[key]!r} is not a name (text) of the rubric's "
                                 f"{'kinds' if key == 'kind' else 'classes'}")
        score = row.get("rm_score")
        if "rm_score" in row and (isinstance(score, bool) or not isinstance(score, (int, float))
                                  or not math.isfinite(score)):
            raise UsageError(f"{path}:{i}: rm_score {score!r} is not a finite number")
        rows.append(row)
    if not rows:
        raise UsageError(f"{path} has no rows")
    return rows


def _reply(row: dict):
    """A row's completion as the reward model scores it: after a conversation, the assistant's turn (as augury rl
    scores its rollouts); after a text prompt, the text (never empty)."""
    completion = row["completion"]
    if isinstance(row["prompt"], list) and isinstance(completion, str):
        return [{"role": "assistant", "content": completion}]
    return completion or " "


def rubric_fit(*, data: str, out: str, rubric: str = "default", grader: str = "offline",
               grader_model_args: str = "", reward_model: str = "", margin: float = 1.0, l2: float = 0.01,
               steps: int = 500, held_out: float = 0.1, seed: int = 0) -> dict:
    """Fit the class rewards of RUBRIC on labelled completions and write the fitted rubric.

    Args:
        data: JSONL rows with prompt, completion, kind, class (and optionally rm_score).
        out: output folder: rubric.yaml and report.json.
        rubric: the rubric to start from (a shipped name or a YAML file).
        grader: the grader whose class probabilities enter the combined reward (augury.safety.graders spec).
        grader_model_args: a judge model's backend options, key=value,...
        reward_model: an `augury rm` folder scoring each completion ("" = the rows' rm_score, or 0).
        margin: the hinge margin between a better and a worse class.
        l2: pull of the fitted rewards towards the starting ones.
        steps: Adam steps.
        held_out: share of the prompts (all their completions) held out of the fit, on whose pairs the ordering
            is reported as well (round(share x prompts with ordered pairs), at least one; 0 = none).
        seed: which prompts are held out.
    """
    from augury.safety.fit import fit_class_rewards
    from augury.safety.graders import load_grader

    for name, value, ok, want in (("steps", steps, steps >= 1, ">= 1"), ("margin", margin, margin > 0, "> 0"),
                                  ("l2", l2, l2 >= 0, ">= 0"), ("held_out", held_out, 0 <= held_out < 1,
                                                                ">= 0 and < 1")):
        if not ok:  # also NaN
            raise UsageError(f"--{name} must be {want} (got {value})")
    if why := not_a_folder(out):
        raise UsageError(f"--out {why}")
    rows = _rows(data)
    from augury.evals.backends.errors import EndpointError

    g = load_grader(grader, rubric, grader_model_args)
    try:
        gradings = g.grade([r["prompt"] for r in rows], [r["completion"] for r in rows], [r["kind"] for r in rows])
    except ValueError as err:
        raise UsageError(f"{data}: {err}") from None
    except EndpointError as err:  # a judge endpoint that is down or refuses (bad key): nothing to fit
        raise UsageError(f"--grader {grader}: the grader's endpoint failed: {err}") from None
    if not any(x.ok for x in gradings):
        why = Counter((x.error or "no classes").split(":")[0] for x in gradings)
        raise UsageError(f"--grader {grader}: every one of the {len(gradings)} gradings failed "
                         f"({', '.join(f'{k}: {n}' for k, n in why.most_common())}); nothing to fit")
    if reward_model:
        from augury.align.rm import load_reward_model

        try:
            rm = load_reward_model(reward_model)
        except ValueError as err:  # not a reward model (AlignDataError), or a run that does not load
            raise UsageError(str(err)) from None
        try:
            scores = [float(s) for s in rm.score([r["prompt"] for r in rows], [_reply(r) for r in rows])]
        except ValueError as err:  # a row it cannot score (ChatFormatError: a malformed message list)
            raise UsageError(f"{data}: the reward model cannot score a row: {err}") from None
        bad = next((i for i, s in enumerate(scores) if not math.isfinite(s)), None)
        if bad is not None:  # a diverged reward model: every fitted reward would be NaN
            raise UsageError(f"--reward_model {reward_model} scored row {bad + 1} of {data} {scores[bad]}, not a "
                             "finite number; nothing to fit")
    elif any("rm_score" in r for r in rows):
        if not all("rm_score" in r for r in rows):
            raise UsageError(f"{data}: some rows have rm_score and some do not")
        scores = [float(r["rm_score"]) for r in rows]
    else:
        scores = None
    try:
        fitted, report = fit_class_rewards(g.rubric, gradings, [r["class"] for r in rows],
                                           [json.dumps(r["prompt"], sort_keys=True) for r in rows], scores,
                                           margin=margin, l2=l2, steps=steps, held_out=held_out, seed=seed)
    except ValueError as err:
        raise UsageError(str(err)) from None
    new = g.rubric.with_rewards(fitted)
    Path(out).mkdir(parents=True, exist_ok=True)
    result = {"created": utc_now(), "data": data, "rubric": g.rubric.source, "grader": grader,
              "reward_model": reward_model or ("rm_score column" if scores else "none"),
              "held_out": held_out, "seed": seed, "grader_failures": report.skipped, **vars(report),
              "warnings": report.warnings(), "rewards": fitted,
              "starting_rewards": {k: {c.name: c.reward[k] for c in g.rubric.classes} for k in g.rubric.kinds}}
    atomic_write_text(Path(out) / "rubric.yaml", f"# fitted by augury rubric-fit on {data}\n" +
                      yaml.safe_dump(new.to_dict(), sort_keys=False, allow_unicode=True))
    atomic_write_json(Path(out) / "report.json", result)
    print(f"{report.pairs} ordered pairs fitted ({report.skipped} completions left out: grading failed); ordered "
          f"correctly {report.ordered_before:.3f} -> {report.ordered_after:.3f}, hinge {report.hinge_before:.3f} "
          f"-> {report.hinge_after:.3f}")
    if report.held_out_pairs:
        print(f"held out {report.held_out_prompts} prompt(s), {report.held_out_pairs} pairs: ordered correctly "
              f"{report.held_out_ordered_before:.3f} -> {report.held_out_ordered_after:.3f}, hinge "
              f"{report.held_out_hinge_before:.3f} -> {report.held_out_hinge_after:.3f}")
    else:
        print("no prompts held out (--held_out 0): the figures above are on the pairs fitted only")
    inverted = {(v["kind"], n) for v in report.inversions for n in (v["written_higher"], v["written_lower"])}
    for kind in g.rubric.kinds:
        for c in g.rubric.classes:
            mark = "  <- order inverted" if (kind, c.name) in inverted else ""
            print(f"{kind:<10} {c.name:<28} {c.reward[kind]:>7.3f} -> {fitted[kind][c.name]:>7.3f}{mark}")
    if report.inversions:
        print(f"WARNING: the fitted rewards invert the rubric's order for {len(report.inversions)} pair(s) of "
              f"classes (report.json: inversions); the better ordering above may come from fitting the grader's "
              f"mistakes:")
        for line in report.warnings():
            print(f"  {line}")
    return result


def main(argv: list[str]) -> int:
    from augury.command import function_cli

    function_cli(rubric_fit, argv, prog="augury rubric-fit")
    return 0
