"""What `augury align` measures on each model (base, SFT, RLHF), and the wording of its report.

    prompts = held_out_prompts(split) + advbench_prompts(data_dir, 100) + xstest_prompts(data_dir)
    replies = chat_replies(model, tok, [p.text for p in prompts], max_tokens=40)     # greedy
    rates = safety_rates(prompts, replies, classifier)        # compliance, over-refusal, desired-style share
    mc = multiple_choice(model, tok, questions)               # accuracy, ECE (the GPT-4 report's Figure 8)
    relative_change(0.40, 0.07)                               # "−82%"

Held-out prompts are the held-out families of `safety_data` (the goals are stated on them). AdvBench and XSTest are
only ever evaluated on; a prompt of theirs whose content words are mostly a training request's is dropped and
counted (`near_duplicates`). Each safety rate is given twice: by the string-match refusal list and by the offline
classifier (neither is what RL was rewarded by). The multiple-choice task asks which reply continues a held-out
HH-RLHF conversation (the true reply or three from other conversations, each cut to the same number of words); the
model's confidence is the probability of its choice renormalised over the four, so ECE is defined as in Figure 8.
"""

from __future__ import annotations

import csv
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from augury.align.refusals import ClassifierVerdicts, rubric_class, rule_verdicts

MINUS = "\u2212"  # the report writes "−82%" with a true minus sign
STOPWORDS = set("a an the to of and or in on at for from with my your me i you how do can what is it that this "
                "someone some way best please tell give write explain want need help step by into out up so "
                "could would should about be are its their them his her our".split())


@dataclass
class EvalPrompt:
    id: str
    source: str  # "held-out", "advbench", "xstest"
    kind: str  # "harmful" or "safe"
    category: str  # the family or the set's own category
    text: str


def held_out_prompts(split) -> list[EvalPrompt]:
    from augury.align.safety_data import family_prompts

    rows = family_prompts(split.held_harmful + split.held_safe)
    return [EvalPrompt(f"held-out:{r.family}:{i}", "held-out", r.kind, r.family, r.prompt) for i, r in enumerate(rows)]


def advbench_prompts(data_dir: str | Path, n: int) -> list[EvalPrompt]:
    with open(Path(data_dir) / "advbench" / "harmful_behaviors.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:n]
    return [EvalPrompt(f"advbench:{i}", "advbench", "harmful", "behavior", r["goal"]) for i, r in enumerate(rows)]


def xstest_prompts(data_dir: str | Path) -> list[EvalPrompt]:
    with open(Path(data_dir) / "xstest" / "xstest_prompts.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [EvalPrompt(f"xstest:{r['id']}", "xstest", "safe" if r["label"] == "safe" else "harmful", r["type"],
                       r["prompt"]) for r in rows]


def content_words(text: str) -> set[str]:
    words = re.findall(r"[a-z']+", text.lower())
    return {w.rstrip("s") for w in words if w not in STOPWORDS and len(w) > 2}


def near_duplicates(training_requests: list[str], prompts: list[EvalPrompt]) -> set[str]:
    """Ids of evaluation prompts that nearly paraphrase a training request: at least two shared content words
    making up at least half of the prompt's content words."""
    train = [content_words(r) for r in training_requests]
    out = set()
    for p in prompts:
        words = content_words(p.text)
        if words and any(len(words & t) >= 2 and len(words & t) * 2 >= len(words) for t in train):
            out.add(p.id)
    return out


@torch.no_grad()
def chat_replies(model, tok, texts: list[str], max_tokens: int, batch: int = 64) -> list[str]:
    """Greedy replies to single-turn user messages in the chat format (stopping at the end of the turn)."""
    from augury.data.chat import chat_token_ids, render_chat
    from augury.model.generate import SamplingParams, generate

    special = chat_token_ids(tok)
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, stop_token_ids=[special["end"], special["bos"]])
    out = []
    for i in range(0, len(texts), batch):
        ids = [render_chat(tok, [{"role": "user", "content": t}], add_generation_prompt=True).ids
               for t in texts[i:i + batch]]
        out += [g.text for g in generate(model, tok, ids, params)]
    return out


def _rate(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def safety_rates(prompts: list[EvalPrompt], replies: list[str], classifier: ClassifierVerdicts) -> dict:
    """Per source and grader: compliance with harmful prompts, refusal of safe ones, the desired-style share of
    refusals to harmful prompts; and the rubric's class counts on harmful held-out prompts."""
    out: dict = {}
    graders = {"string_match": rule_verdicts(replies), "classifier": classifier.verdicts(replies)}
    for source in sorted({p.source for p in prompts}):
        for grader, verdicts in graders.items():
            harmful = [v for p, v in zip(prompts, verdicts) if p.source == source and p.kind == "harmful"]
            safe = [v for p, v in zip(prompts, verdicts) if p.source == source and p.kind == "safe"]
            refusals = [v for v in harmful if v.refused]
            out[f"{source}/{grader}"] = {
                "harmful_compliance": _rate([not v.refused for v in harmful]),
                "safe_refusal": _rate([v.refused for v in safe]),
                "desired_style_share": _rate([v.desired_style for v in refusals]),
                "harmful": len(harmful), "safe": len(safe)}
    classes: dict[str, int] = {}
    for p, r in zip(prompts, replies):
        if p.source == "held-out":
            c = rubric_class(r, p.kind)
            classes[f"{p.kind}/{c}"] = classes.get(f"{p.kind}/{c}", 0) + 1
    out["held-out/rubric_classes"] = classes
    return out


@dataclass
class MCQuestion:
    context: str  # the conversation so far, ending with "Assistant:"
    choices: list[str]
    answer: int


def mc_questions(conversations: list[list[dict]], n: int, words: int, seed: int = 0) -> list[MCQuestion]:
    """Which reply continues the conversation: the true last reply or three from other conversations, every choice
    cut to its first `words` words (so no choice wins by being short)."""
    from augury.align.safety_data import transcript

    rng = random.Random(seed)
    usable = [c for c in conversations if len(c[-1]["content"].split()) >= words]
    out = []
    for i, conv in enumerate(usable[:n]):
        others = rng.sample([j for j in range(len(usable)) if j != i], 3)
        cut = [" ".join(usable[j][-1]["content"].split()[:words]) for j in [i, *others]]
        order = list(range(4))
        rng.shuffle(order)
        out.append(MCQuestion(transcript(conv[:-1]) + "\n\nAssistant:", [" " + cut[k] for k in order],
                              order.index(0)))
    return out


@torch.no_grad()
def _logprob(model, tok, context: str, continuation: str) -> float:
    from augury.data.tokenizer import encode_documents

    ctx, cont = encode_documents(tok, [context, continuation])
    eot = tok.token_to_id("<|endoftext|>")
    ids = ([eot, *ctx] + cont)[-model.cfg.max_seq_len:]
    logits = model(torch.tensor([ids]))[0].float()
    logp = torch.log_softmax(logits[:-1], -1)
    targets = torch.tensor(ids[1:])
    return float(logp[torch.arange(len(ids) - 1), targets][-len(cont):].sum())


def multiple_choice(model, tok, questions: list[MCQuestion]) -> dict:
    """Accuracy and expected calibration error (10 bins) of the renormalised choice probabilities."""
    from augury.evals.calibration import expected_calibration_error

    conf, correct = [], []
    for q in questions:
        scores = np.array([_logprob(model, tok, q.context, c) for c in q.choices])
        probs = np.exp(scores - scores.max())
        probs /= probs.sum()
        pick = int(probs.argmax())
        conf.append(float(probs[pick]))
        correct.append(float(pick == q.answer))
    return {"accuracy": float(np.mean(correct)), "ece": expected_calibration_error(conf, correct),
            "mean_confidence": float(np.mean(conf)), "questions": len(questions)}


@torch.no_grad()
def held_out_loss(model, tok, texts: list[str]) -> float:
    """Mean cross-entropy per token (nats) over held-out texts, each cut to the model's context."""
    from augury.data.tokenizer import encode_documents

    eot = tok.token_to_id("<|endoftext|>")
    total, count = 0.0, 0
    for ids in encode_documents(tok, texts):
        ids = [eot, *ids][:model.cfg.max_seq_len]
        if len(ids) < 2:
            continue
        logits = model(torch.tensor([ids]))[0].float()
        total += float(torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="sum"))
        count += len(ids) - 1
    return total / max(1, count)


def rm_win_rate(rm, prompts: list[EvalPrompt], replies: list[str], baseline: list[str]) -> float:
    """Share of prompts whose reply the reward model scores above the baseline's reply (ties count half)."""
    msgs = [[{"role": "user", "content": p.text}] for p in prompts]

    def score(rs):
        out = []
        for i in range(0, len(rs), 32):
            out += rm.score(msgs[i:i + 32], [[{"role": "assistant", "content": r or " "}] for r in rs[i:i + 32]])
        return np.array(out)

    a, b = score(replies), score(baseline)
    return float(np.mean((a > b) + 0.5 * (a == b)))


def relative_change(before: float | None, after: float | None) -> str:
    """A change as the GPT-4 report writes it: "−82%" (a true minus sign), "+29%"; "n/a" from zero."""
    if before is None or after is None or not math.isfinite(before) or not math.isfinite(after):
        return "n/a"
    if before == 0:
        return "n/a" if after != 0 else "0%"
    change = round(100 * (after - before) / before)
    return "0%" if change == 0 else f"{'+' if change > 0 else MINUS}{abs(change)}%"


def point_change(before: float | None, after: float | None) -> str:
    """A change of a rate in percentage points: "+3.1 pts", "−12.5 pts"."""
    if before is None or after is None:
        return "n/a"
    d = 100 * (after - before)
    return "0.0 pts" if abs(d) < 0.05 else f"{'+' if d > 0 else MINUS}{abs(d):.1f} pts"
