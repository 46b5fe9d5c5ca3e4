"""The held-out capability suite: complete one held-out line of a held-out file, checked by exact match.

Problems come only from the validation split, i.e. whole files no run ever trained on. A problem is a position in
a file where a line starts (the previous token ends with a newline and perhaps some indentation; `span: line`):
the prompt is the `context_tokens` tokens of the file before it, the answer the line itself (between
`min_target_tokens` and `max_target_tokens` tokens), and a sample passes when the text it generates up to its first
newline equals the line exactly. With `span: span` the answer is a span inside a line that ends where a word ends
(an identifier's rest, a keyword, a number), and a sample passes when its text starts with the span and the word
ends there. Per run and problem,
n samples at temperature `temperature` give the unbiased pass-rate estimate c/n (pass@1); `records()` feeds
`augury.scaling.fit_capability`, which applies the GPT-4 report's protocol (problems every rung solves at least
once, difficulty buckets, −E_P[log pass_rate(C)] = α·C^(−k) per bucket).

    problems = build_problems(data, cfg.capability)
    rec = evaluate_run("runs/f/rungs/rung3", problems, cfg.capability, run_name="rung3")
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from augury.forecast.config import CapabilityConfig, ForecastConfigError


def build_problems(data, cap: CapabilityConfig) -> list[dict]:
    """Draw `cap.problems` line-completion problems from the validation split's documents (seeded)."""
    tok = data.tokenizer()
    tokens = np.memmap(data.split_path("val"), dtype=data.dtype, mode="r")
    vocab = tok.get_vocab_size()
    pieces = [tok.decode([i], skip_special_tokens=False) for i in range(vocab)]
    ends_line = np.array(["\n" in p for p in pieces])
    # A line may start right after a token that ends the previous line, possibly with some indentation merged in.
    opens_line = np.array(["\n" in p and not p.rsplit("\n", 1)[1].strip() for p in pieces])
    if cap.span in ("span", "copy"):
        candidates = _span_candidates(data, tokens, pieces, ends_line, cap, copy=cap.span == "copy")
    else:
        candidates = _line_candidates(data, tokens, pieces, ends_line, opens_line, cap)
    if len(candidates) < cap.problems:
        raise ForecastConfigError(f"capability: the validation split holds only {len(candidates)} candidate "
                                  f"{cap.span} problems, fewer than capability.problems={cap.problems}; "
                                  f"lower it or shorten context_tokens")
    rng = np.random.default_rng(cap.seed)
    pick = sorted(rng.choice(len(candidates), size=cap.problems, replace=False).tolist())
    return [{"problem": f"{candidates[i][0]}:{candidates[i][1]}", "prompt_ids": candidates[i][2].tolist(),
             "answer": candidates[i][3], "answer_tokens": candidates[i][4], "kind": cap.span} for i in pick]


def _line_candidates(data, tokens, pieces, ends_line, opens_line, cap) -> list[tuple]:
    """Places where a line starts: (doc, position, prompt ids, the line, its token count)."""
    candidates = []
    for doc in data.documents("val"):
        ids = np.asarray(tokens[doc["offset"] + 1:doc["offset"] + doc["tokens"]], dtype=np.int64)
        nl = ends_line[ids]
        for s in range(cap.context_tokens, len(ids)):
            if not opens_line[ids[s - 1]] or nl[s]:
                continue
            after = np.flatnonzero(nl[s:s + cap.max_target_tokens])
            if not after.size:
                continue
            e = s + int(after[0])
            length = e - s + 1
            if length < cap.min_target_tokens:
                continue
            line = "".join(pieces[i] for i in ids[s:e + 1]).split("\n", 1)[0]
            if len(line.strip()) < max(1, cap.min_answer_chars):
                continue
            candidates.append((doc["id"], s, ids[s - cap.context_tokens:s], line, length))
    return candidates


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _span_candidates(data, tokens, pieces, ends_line, cap, copy: bool = False) -> list[tuple]:
    """Spans inside a line that start at a token boundary and end where a word ends: (doc, position, prompt ids,
    the span's text, its token count). The span is the fewest tokens (>= min_target_tokens) whose text is
    followed by a character that cannot continue a word. With `copy`, only spans the prompt determines (see
    `determined_by_prompt`)."""
    candidates = []
    ctx = cap.context_tokens
    for doc in data.documents("val"):
        ids = np.asarray(tokens[doc["offset"] + 1:doc["offset"] + doc["tokens"]], dtype=np.int64)
        nl = ends_line[ids]
        for s in range(ctx, len(ids) - cap.max_target_tokens):
            for m in range(cap.min_target_tokens, cap.max_target_tokens + 1):
                if nl[s + m - 1]:
                    break
                text = "".join(pieces[i] for i in ids[s:s + m])
                following = pieces[ids[s + m]]
                if following and not _is_word_char(following[0]) and _is_word_char(text[-1]):
                    if len(text.strip()) >= max(1, cap.min_answer_chars) and (
                            not copy or determined_by_prompt(ids[s - ctx:s], ids[s:s + m])):
                        candidates.append((doc["id"], s, ids[s - ctx:s], text, m))
                    break
    return candidates


def determined_by_prompt(prompt: np.ndarray, answer: np.ndarray, key: int = 2) -> bool:
    """Whether the prompt's own text fixes the answer: the `key` tokens just before the answer occur earlier in
    the prompt, and every earlier occurrence (with room for the answer inside the prompt) is followed by exactly
    the answer's tokens. A model that copies from its context (induction) can pass such a problem almost always,
    so its pass rate tends to 1 with scale, the shape −E[log pass_rate] = α·C^(−k) assumes; a span of ordinary
    text has other plausible continuations and its pass rate saturates below 1."""
    n, m = len(prompt), len(answer)
    tail = prompt[n - key:]
    starts = np.arange(0, n - key - m + 1)
    hits = starts[np.all(np.stack([prompt[starts + i] == tail[i] for i in range(key)]), axis=0)]
    if hits.size == 0:
        return False
    follow = np.stack([prompt[hits + key + i] for i in range(m)], axis=1)
    return bool(np.all(follow == answer[None, :]))


def passes(text: str, answer: str, kind: str) -> bool:
    """Whether one sample's generated text solves a problem: for a line, the text up to its first newline is the
    line; for a span, the text starts with the span and the word ends there."""
    if kind in ("span", "copy"):
        return text.startswith(answer) and (len(text) == len(answer) or not _is_word_char(text[len(answer)]))
    return "\n" in text and text.split("\n", 1)[0] == answer


@torch.no_grad()
def sample_lines(model, tokenizer, problems: list[dict], n: int, temperature: float, max_new: int, seed: int,
                 chunk: int = 16) -> list[int]:
    """Passes (c of n) per problem. Prompts of one chunk share a prefill; its KV cache is copied to n rows each."""
    device = model.embed_tokens.weight.device
    gen = torch.Generator(device=device).manual_seed(seed)
    vocab = tokenizer.get_vocab_size()
    pieces = [tokenizer.decode([i], skip_special_tokens=False) for i in range(vocab)]
    has_nl = torch.tensor(["\n" in p for p in pieces], device=device)
    eot = tokenizer.token_to_id("<|endoftext|>")
    counts = []
    for start in range(0, len(problems), chunk):
        part = problems[start:start + chunk]
        ctx = len(part[0]["prompt_ids"])
        x = torch.tensor([p["prompt_ids"] for p in part], dtype=torch.long, device=device)
        first = model.new_kv_cache(len(part), ctx)
        logits = model(x, kv_cache=first)[:, -1].repeat_interleave(n, dim=0)
        cache = model.new_kv_cache(len(part) * n, ctx + max_new)
        for full, prefix in ((cache.k, first.k), (cache.v, first.v)):  # each prompt's keys/values to its n rows
            depth, _, heads, length, hd = full.shape
            rows = full.view(depth, len(part), n, heads, length, hd)[:, :, :, :, :ctx]
            rows.copy_(prefix.unsqueeze(2).expand(depth, len(part), n, heads, ctx, hd))
        cache.pos = ctx
        out = torch.zeros(len(part) * n, max_new, dtype=torch.long, device=device)
        done = torch.zeros(len(part) * n, dtype=torch.bool, device=device)
        for t in range(max_new):
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
            out[:, t] = torch.where(done, torch.full_like(nxt, eot), nxt)
            done |= has_nl[nxt] | (nxt == eot)
            if bool(done.all()) or t == max_new - 1:
                break
            logits = model(nxt.unsqueeze(1), kv_cache=cache)[:, -1]
        rows = out.tolist()
        for j, p in enumerate(part):
            c = 0
            for r in rows[j * n:(j + 1) * n]:
                text = "".join(pieces[i] for i in r if i != eot)
                c += passes(text, p["answer"], p.get("kind", "line"))
            counts.append(c)
    return counts


def max_new_tokens(cap: CapabilityConfig) -> int:
    """Tokens a sample may generate: a sample may tokenise the line differently (longer) than the file does."""
    return cap.max_target_tokens + 2


def evaluate_run(run_dir: str | Path, problems: list[dict], cap: CapabilityConfig, run_name: str,
                 device: str = "cpu", checkpoint: str | Path | None = None) -> list[dict]:
    """{run, problem, n, c} per problem for the run's `checkpoint` (default: its newest intact one)."""
    from augury.model.run import load_run

    model, tokenizer, _ = load_run(run_dir, checkpoint=checkpoint, device=device)
    counts = sample_lines(model, tokenizer, problems, cap.samples, cap.temperature, max_new_tokens(cap), cap.seed + 1)
    return [{"run": run_name, "problem": p["problem"], "n": cap.samples, "c": int(c)}
            for p, c in zip(problems, counts)]


def neg_log_pass_rate(records: list[dict], problems: list[str], floor_samples: bool = True) -> tuple[float, int]:
    """Mean over `problems` of −log(c/n) for one run's records, and how many had c = 0 (floored at 1/(2n))."""
    by = {r["problem"]: r for r in records}
    vals, zeros = [], 0
    for p in problems:
        r = by[p]
        rate = r["c"] / r["n"]
        if rate == 0:
            zeros += 1
            rate = 1 / (2 * r["n"]) if floor_samples else rate
        vals.append(-math.log(rate))
    return float(np.mean(vals)), zeros
