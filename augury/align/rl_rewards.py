"""The rewards of `augury rl`: each rollout's summed reward from a reward model, Python reward functions and a
rule-based reward model (a grader under a rubric, on prompts tagged with a kind), with every source checked.

    functions = load_reward_functions(["my_rewards:exact_match=2"])   # (name, function, weight)
    rewards, by_source, graded = rollout_rewards(cfg, rollouts, reward_model, functions, grader, group=4)

A reward function that raises, returns the wrong count or a non-finite number stops the run with its name
(`RewardError`). As in TRL, a function may return None for a completion it does not apply to: that source is left
out of the completion's sum and of the source's mean, and a completion no source scored is unscored (a grader
scores only rows tagged with a kind). A rollout the grader fails on is unscored too (its reward would be
incomplete). An unscored rollout's reward is NaN: the advantages of augury.align.rl_losses leave it out of its
group's baseline and std, the loop leaves it out of the update and of the logged means, and counts it.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from augury.align.data import AlignDataError

if TYPE_CHECKING:
    from augury.align.rl_config import RLConfig


class RewardError(ValueError):
    pass


@dataclass
class Rollout:
    row: dict
    prompt_ids: list[int]
    completion_ids: list[int]
    text: str
    finished: bool  # ended at a stop token rather than at response_length


def load_reward_functions(specs: list[str]) -> list[tuple[str, object, float]]:
    out = []
    for spec in specs:
        target, _, weight = spec.partition("=")
        module, _, name = target.partition(":")
        if not module or not name:
            raise RewardError(f"reward function {spec!r}: write it as module:function or module:function=weight")
        try:
            fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as err:
            raise RewardError(f"reward function {target}: cannot import it ({err})") from None
        except Exception as err:  # noqa: BLE001 (the user's module: a syntax error, or one its import raises)
            raise RewardError(f"reward function {target}: cannot import it ({type(err).__name__}: {err})") from None
        if not callable(fn):  # found now, not after the first step's rollouts have been sampled
            raise RewardError(f"reward function {target} is not callable (its type is {type(fn).__name__})")
        out.append((target, fn, float(weight) if weight else 1.0))
    return out


def call_reward(name: str, fn, prompts: list, completions: list, columns: dict) -> list[float]:
    """A reward function's scores, checked: one finite float per completion, or NaN where it returned None (it
    does not apply to that completion: TRL's convention)."""
    try:
        scores = fn(prompts=prompts, completions=completions, **columns)
    except Exception as err:  # noqa: BLE001 (the user's function: its error is reported with its name)
        raise RewardError(f"reward function {name} raised {type(err).__name__}: {err}") from None
    if isinstance(scores, (np.ndarray, torch.Tensor)):  # TRL takes any sequence of numbers
        if scores.ndim != 1:
            raise RewardError(f"reward function {name} returned an array of shape {tuple(scores.shape)} for "
                              f"{len(completions)} completions (one score each)")
        scores = scores.tolist()
    if not isinstance(scores, (list, tuple)) or len(scores) != len(completions):
        got = len(scores) if isinstance(scores, (list, tuple)) else type(scores).__name__
        raise RewardError(f"reward function {name} returned {got} scores for {len(completions)} completions")
    out = []
    for s in scores:
        if s is None:
            out.append(math.nan)
            continue
        try:
            v = float(s)
        except (TypeError, ValueError):
            raise RewardError(f"reward function {name} returned a non-number {s!r}") from None
        if not math.isfinite(v):
            raise RewardError(f"reward function {name} returned {v}: rewards must be finite")
        out.append(v)
    return out


def load_rubric_grader(cfg: RLConfig, rows: list[dict]):
    """The configured grader, after checking every row's kind tag against its rubric."""
    from augury.align.rl_prompts import where
    from augury.safety.graders import load_grader

    grader = load_grader(cfg.grader, cfg.rubric, cfg.grader_model_args)
    tagged = 0
    for i, row in enumerate(rows, 1):
        kind = row.get(cfg.kind_column)
        if kind in (None, ""):
            continue
        if kind not in grader.rubric.kinds:
            raise AlignDataError(f"{cfg.prompts}: {where(row, i)}: {cfg.kind_column} {kind!r} is not one of the "
                                 f"rubric's kinds {grader.rubric.kinds}")
        tagged += 1
    if not tagged:
        raise AlignDataError(f"{cfg.prompts}: --grader needs rows tagged with a prompt kind: no row has a "
                             f"{cfg.kind_column!r} column ({' or '.join(grader.rubric.kinds)})")
    return grader


def _zero_spread(cfg: RLConfig, rollouts: list[Rollout], scores: np.ndarray, ok: np.ndarray, group: int,
                 rubric) -> dict:
    """Per kind, the share of fully graded groups whose class reward is the same for every completion
    (`rbrm_zero_std`), and of those below the best reward the rubric gives that kind (`rbrm_stuck`: no completion
    reached a better class, so the rubric cannot teach the prompt)."""
    best = {kind: max(c.reward[kind] for c in rubric.classes) for kind in rubric.kinds}
    same: dict[str, list[bool]] = {}
    stuck: dict[str, list[bool]] = {}
    for start in range(0, len(rollouts) - group + 1, group):
        kind = rollouts[start].row.get(cfg.kind_column)
        if kind in (None, "") or not ok[start:start + group].all():
            continue
        part = scores[start:start + group]
        flat = bool(part.max() - part.min() < 1e-9)
        same.setdefault(str(kind), []).append(flat)
        stuck.setdefault(str(kind), []).append(flat and part.max() < best[kind] - 1e-9)
    if not same:
        return {}
    return {"rbrm_zero_std": float(np.mean([z for zs in same.values() for z in zs])),
            **{f"rbrm_zero_std/{kind}": float(np.mean(zs)) for kind, zs in sorted(same.items())},
            **{f"rbrm_stuck/{kind}": float(np.mean(zs)) for kind, zs in sorted(stuck.items())}}


def stock_answers(rollouts: list[Rollout], min_prompts: int) -> np.ndarray:
    """Which completions are word for word (as a person reads them, case and spacing aside) what the step also
    sampled for other prompts, `min_prompts` different prompts in all: a reply that does not depend on its request."""
    from augury.safety.rules import as_read

    keys = [" ".join(as_read(r.text).lower().split()) for r in rollouts]
    prompts: dict[str, set[str]] = {}
    for key, r in zip(keys, rollouts):
        prompts.setdefault(key, set()).add(repr(r.row["prompt"]))
    return np.array([bool(key) and len(prompts[key]) >= min_prompts for key in keys])


def rollout_rewards(cfg: RLConfig, rollouts: list[Rollout], reward_model, functions,
                    grader=None, group: int = 1) -> tuple[torch.Tensor, dict, np.ndarray]:
    """The summed reward of each rollout (NaN where it is unscored), the mean of each source (before weighting,
    over the rollouts it scored; with the number of None a function returned as `NAME/none`), and which rollouts
    are scored (False where the grader failed, or where no source applies: every function returned None and there is
    no reward model nor, on a row tagged with a kind, a grader; those must not be trained on). Rollouts come in
    groups of `group` completions of one prompt; with a grader and groups, the mean of each source includes the
    group-spread shares of `_zero_spread`."""
    prompts = [r.row["prompt"] for r in rollouts]
    # each completion in its own prompt's format (a file may mix text and message-list prompts)
    completions = [[{"role": "assistant", "content": r.text}] if isinstance(p, list) else r.text
                   for p, r in zip(prompts, rollouts)]
    # every column any row of the batch has, None where a row lacks it (as a datasets table gives them), and as TRL
    # each completion's token ids (the stop token that ended it included): TRL's length rewards read them
    names = dict.fromkeys(k for r in rollouts for k in r.row if k not in ("prompt", "completion_ids"))
    columns = {k: [r.row.get(k) for r in rollouts] for k in names}
    columns["completion_ids"] = [list(r.completion_ids) for r in rollouts]
    total = np.zeros(len(rollouts))
    by_source: dict[str, float] = {}
    # a reward model scores every rollout; a function may not, nor a grader the rows without a kind (it gives them
    # nothing: scored by no other source, such a row would otherwise train and be logged as a reward of 0)
    scored = np.full(len(rollouts), reward_model is not None)
    if reward_model is not None:
        scores = np.array(reward_model.score(prompts, [c if c != "" else " " for c in completions]))
        total += cfg.reward_model_weight * scores
        by_source["reward_model"] = float(scores.mean())
    for name, fn, weight in functions:
        scores = np.array(call_reward(name, fn, prompts, completions, columns), dtype=float)
        applies = ~np.isnan(scores)
        total += weight * np.where(applies, scores, 0.0)
        scored |= applies
        if applies.any():
            by_source[name] = float(scores[applies].mean())
        by_source[f"{name}/none"] = float((~applies).sum())
    ok = np.ones(len(rollouts), dtype=bool)
    if grader is not None:
        from augury.safety.graders import grade_rewards

        tagged = [i for i, r in enumerate(rollouts) if r.row.get(cfg.kind_column) not in (None, "")]
        batch = grade_rewards(grader, [prompts[i] for i in tagged], [rollouts[i].text for i in tagged],
                              [rollouts[i].row[cfg.kind_column] for i in tagged])
        scores = np.zeros(len(rollouts))
        scored[tagged] = True
        for i, reward in zip(tagged, batch.rewards):
            if reward is None:
                ok[i] = False
            else:
                scores[i] = reward
        total += cfg.grader_weight * scores
        graded = [i for i in tagged if ok[i]]
        if graded:
            by_source["rbrm"] = float(scores[graded].mean())
            for c in grader.rubric.classes:
                by_source[f"rbrm_class/{c.name}"] = float(np.mean(
                    [g.classes[c.name] for g in batch.gradings if g.ok]))
            kinds = [rollouts[i].row[cfg.kind_column] for i in tagged]
            for kind in sorted(set(kinds)):  # per kind: a mean over both kinds hides a trade between them
                mine = [j for j, k in enumerate(kinds) if k == kind and ok[tagged[j]]]
                if mine:
                    by_source[f"rbrm/{kind}"] = float(np.mean([scores[tagged[j]] for j in mine]))
                    for c in grader.rubric.classes:
                        by_source[f"rbrm_class/{kind}/{c.name}"] = float(np.mean(
                            [batch.gradings[j].classes[c.name] for j in mine]))
        by_source["rbrm_untagged"] = float(len(rollouts) - len(tagged))
        if cfg.stock_answer_penalty and tagged:
            # a grader reads one reply at a time: only the step's other samples show a reply fits any request
            answers = np.zeros(len(rollouts))
            for i, g in zip(tagged, batch.gradings):
                if g.ok:
                    answers[i] = grader.rubric.behaviour_probability(g.classes, g.kind, ("comply",))
            stock = stock_answers(rollouts, cfg.stock_answer_prompts)
            total -= cfg.stock_answer_penalty * answers * stock
            if answers.sum() > 0:
                by_source["stock_answers"] = float((answers * stock).sum() / answers.sum())
        if group > 1:  # one completion per prompt (ppo) has no spread to measure
            by_source.update(_zero_spread(cfg, rollouts, scores, ok, group, grader.rubric))
    if cfg.missing_eos_penalty:
        total -= cfg.missing_eos_penalty * np.array([not r.finished for r in rollouts], dtype=float)
    ok &= scored
    return torch.tensor(np.where(ok, total, np.nan), dtype=torch.float32), by_source, ok
