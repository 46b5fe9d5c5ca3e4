"""Fit a rubric's class rewards so that RM score + class reward orders completions as the rubric says (the RBR
paper's hinge-loss weight fitting).

    from augury.safety.fit import fit_class_rewards
    fitted, report = fit_class_rewards(rubric, gradings, gold_classes, groups, rm_scores)
    rubric.with_rewards(fitted)            # a rubric whose rewards are the fitted ones

Each completion i has a gold class (what it is), a grading (the grader's class probabilities) and a reward-model
score. Its combined reward is R_i = rm_i + sum_c P_i(c) w[kind][c]. Within a group (completions of the same
prompt), whenever the rubric ranks i's gold class above j's (a higher class reward for that kind), the loss has the
hinge max(0, margin - (R_i - R_j)); a small L2 pull towards the starting rewards keeps the weights from drifting
where no pair constrains them. The weights start at the rubric's rewards and are fitted with Adam.

`held_out` (a share of the prompts with ordered pairs, by default none) keeps every completion of those prompts
out of the fit, chosen by `seed`: the share of pairs ordered correctly on the pairs fitted says little about new
completions (with few classes it reaches 1.0 readily), the same on held-out prompts does. (OpenAI's reference
fitter holds back a share of pairs; here whole prompts, so that no held-out completion was fitted in another
pair.) The report gives the share of ordered pairs the combined reward gets right before and after, on the pairs
fitted and on the held-out ones, the grader's confusion (its
mean class probabilities per gold class), and every pair of classes whose fitted rewards invert the order the
rubric wrote: the fit orders completions by what the grader says they are, so a grader that mistakes one class
for another teaches the fit to reward the wrong one, and the ordering still looks improved.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

from augury.safety.graders import Grading
from augury.safety.rubric import Rubric


@dataclass
class FitReport:
    pairs: int  # ordered pairs (same group, different rank) the weights were fitted on
    skipped: int  # completions left out: failed gradings
    ordered_before: float  # share of the fitted pairs with R_better > R_worse at the starting rewards
    ordered_after: float
    hinge_before: float  # mean hinge loss (without the L2 term) on the fitted pairs
    hinge_after: float
    confusion: dict = field(default_factory=dict)  # kind -> gold class -> the grader's mean probability of each class
    inversions: list = field(default_factory=list)  # see `inversions`
    held_out_prompts: int = 0  # prompts (groups) held out of the fit
    held_out_pairs: int = 0  # their ordered pairs, never fitted on
    held_out_ordered_before: float | None = None  # as ordered_before/after and hinge_*, on the held-out pairs
    held_out_ordered_after: float | None = None  # (None when nothing is held out)
    held_out_hinge_before: float | None = None
    held_out_hinge_after: float | None = None
    held_out_rows: list = field(default_factory=list)  # indices of the held-out completions

    def warnings(self) -> list[str]:
        """One line per inverted pair of classes, naming the grader's confusion between them."""
        out = []
        for v in self.inversions:
            hi, lo = v["written_higher"], v["written_lower"]
            line = (f"{v['kind']}: {lo} is fitted above {hi} ({v['fitted'][lo]:.3f} > {v['fitted'][hi]:.3f}), but "
                    f"the rubric ranks {hi} higher ({v['written'][hi]:g} > {v['written'][lo]:g})")
            if v["confused"] is not None:
                line += (f"; on {hi} completions the grader gives {lo} {v['confused'][0]:.2f} of the probability, "
                         f"on {lo} ones {hi} {v['confused'][1]:.2f}: its confusion between them is the likely cause")
            else:
                line += (f"; no {v['kind']} completion is labelled {' or '.join(v['unlabelled'])}, so the other class "
                         "moved: the grader's confusion of it with another class is the likely cause")
            out.append(line + "; check the grader before using these rewards")
        return out


def _pairs(rubric: Rubric, kinds: list[str], gold: list[str], groups: list) -> list[tuple[int, int]]:
    """(better, worse) index pairs within each group of the same kind, by the rubric's class rewards."""
    reward = {(k, c.name): c.reward[k] for c in rubric.classes for k in rubric.kinds}
    by_group: dict = {}
    for i, g in enumerate(groups):
        by_group.setdefault((g, kinds[i]), []).append(i)
    out = []
    for members in by_group.values():
        for i in members:
            for j in members:
                if reward[(kinds[i], gold[i])] > reward[(kinds[j], gold[j])]:
                    out.append((i, j))
    return out


def confusion(names: list[str], probs: torch.Tensor, gold: list[str], kinds: list[str]) -> dict:
    """Per kind and gold class present, the grader's mean probability of each class."""
    out: dict = {}
    for kind in sorted(set(kinds)):
        for n in names:
            rows = [i for i, (g, k) in enumerate(zip(gold, kinds)) if g == n and k == kind]
            if rows:
                out.setdefault(kind, {})[n] = {m: float(v) for m, v in zip(names, probs[rows].mean(0))}
    return out


def inversions(rubric: Rubric, fitted: dict[str, dict[str, float]], conf: dict) -> list[dict]:
    """Every (kind, class written higher, class written lower) whose fitted rewards are the other way round."""
    out = []
    for kind in rubric.kinds:
        written = {c.name: c.reward[kind] for c in rubric.classes}
        seen = conf.get(kind, {})
        for hi in written:
            for lo in written:
                if written[hi] > written[lo] and fitted[kind][lo] > fitted[kind][hi]:
                    both = hi in seen and lo in seen
                    out.append({"kind": kind, "written_higher": hi, "written_lower": lo,
                                "written": {hi: written[hi], lo: written[lo]},
                                "fitted": {hi: fitted[kind][hi], lo: fitted[kind][lo]},
                                # P(lower | gold higher), P(higher | gold lower)
                                "confused": [seen[hi][lo], seen[lo][hi]] if both else None,
                                "unlabelled": [n for n in (hi, lo) if n not in seen]})
    return out


def hinge_loss(combined: torch.Tensor, pairs: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean of max(0, margin - (R_better - R_worse)) over the (better, worse) index pairs."""
    return torch.relu(margin - (combined[pairs[:, 0]] - combined[pairs[:, 1]])).mean()


def fit_class_rewards(rubric: Rubric, gradings: list[Grading], gold_classes: list[str], groups: list,
                      rm_scores: list[float] | None = None, margin: float = 1.0, l2: float = 0.01,
                      steps: int = 500, lr: float = 0.05, held_out: float = 0.0,
                      seed: int = 0) -> tuple[dict[str, dict[str, float]], FitReport]:
    """Fitted rewards[kind][class] and a FitReport (see the module docstring)."""
    if not 0 <= held_out < 1:  # also NaN
        raise ValueError(f"held_out must be >= 0 and < 1 (got {held_out})")
    names = [c.name for c in rubric.classes]
    unknown = sorted({g for g in gold_classes if g not in names})
    if unknown:
        raise ValueError(f"gold class(es) {unknown} are not classes of rubric {rubric.name} ({names})")
    if not len(gradings) == len(gold_classes) == len(groups) == len(gradings if rm_scores is None else rm_scores):
        raise ValueError("gradings, gold classes, groups and rm scores must have one entry per completion")
    # a NaN (a diverged reward model) would make every fitted reward NaN
    bad = next((i for i, s in enumerate(rm_scores or []) if not math.isfinite(float(s))), None)
    if bad is not None:
        raise ValueError(f"the rm score of completion {bad} is not a finite number ({rm_scores[bad]!r})")
    keep = [i for i, g in enumerate(gradings) if g.ok]
    kinds = [gradings[i].kind for i in keep]
    for k in set(kinds):
        rubric.check_kind(k)
    if rubric.type == "propositions":  # a class without `when` for a kind is never a completion of that kind
        by_name = {c.name: c for c in rubric.classes}
        bad = next((i for i in keep if gradings[i].kind not in by_name[gold_classes[i]].when), None)
        if bad is not None:
            raise ValueError(f"the gold class {gold_classes[bad]} of completion {bad} is not a class of kind "
                             f"{gradings[bad].kind} in rubric {rubric.name} (its `when` has no {gradings[bad].kind})")
    gold = [gold_classes[i] for i in keep]
    kept_groups = [groups[i] for i in keep]
    pair_list = _pairs(rubric, kinds, gold, kept_groups)
    if not pair_list:
        raise ValueError("no ordered pairs: each group needs completions of classes the rubric ranks differently")
    # whole prompts (groups) held out, among those with ordered pairs: round(share x prompts), at least one
    paired = sorted({kept_groups[i] for i, _ in pair_list}, key=repr)
    n_held = max(1, round(held_out * len(paired))) if held_out > 0 else 0
    held = set(random.Random(seed).sample(paired, n_held))
    fit_pairs = [p for p in pair_list if kept_groups[p[0]] not in held]
    held_pairs = [p for p in pair_list if kept_groups[p[0]] in held]
    if not fit_pairs:
        raise ValueError(f"held_out {held_out} holds out {n_held} of the {len(paired)} prompts with ordered pairs, "
                         "leaving no pairs to fit on (hold out a smaller share, or none)")
    pairs = torch.tensor(fit_pairs)
    kind_index = {k: i for i, k in enumerate(rubric.kinds)}
    probs = torch.tensor([[gradings[i].classes[n] for n in names] for i in keep], dtype=torch.float64)
    kind_of = torch.tensor([kind_index[k] for k in kinds])
    rm = torch.tensor([float(rm_scores[i]) if rm_scores else 0.0 for i in keep], dtype=torch.float64)
    w0 = torch.tensor([[c.reward[k] for c in rubric.classes] for k in rubric.kinds], dtype=torch.float64)
    w = w0.clone().requires_grad_(True)

    def combined(weights: torch.Tensor) -> torch.Tensor:
        return rm + (probs * weights[kind_of]).sum(1)

    def ordered(weights: torch.Tensor, on: torch.Tensor = pairs) -> float:
        r = combined(weights)
        return float((r[on[:, 0]] > r[on[:, 1]]).double().mean())

    with torch.no_grad():
        before, hinge_before = ordered(w0), float(hinge_loss(combined(w0), pairs, margin))
    opt = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = hinge_loss(combined(w), pairs, margin) + l2 * ((w - w0) ** 2).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        fitted = w.detach()
        rewards = {k: {n: float(fitted[kind_index[k], j]) for j, n in enumerate(names)} for k in rubric.kinds}
        conf = confusion(names, probs, gold, kinds)
        report = FitReport(len(fit_pairs), len(gradings) - len(keep), before, ordered(fitted), hinge_before,
                           float(hinge_loss(combined(fitted), pairs, margin)), conf,
                           inversions(rubric, rewards, conf), len(held), len(held_pairs),
                           held_out_rows=[i for i, g in zip(keep, kept_groups) if g in held])
        if held_pairs:
            on = torch.tensor(held_pairs)
            report.held_out_ordered_before, report.held_out_ordered_after = ordered(w0, on), ordered(fitted, on)
            report.held_out_hinge_before = float(hinge_loss(combined(w0), on, margin))
            report.held_out_hinge_after = float(hinge_loss(combined(fitted), on, margin))
    return rewards, report
