"""The prompts of `augury rl`: JSONL rows with a `prompt` (text, or a message list for the chat format) and any
other columns, and the prompts each step draws from them.

    rows, prompts = load_prompts("prompts.jsonl", tok)    # prompts: (row, prompt ids, chat?) per row
    picked = step_prompts(cfg, step, len(prompts), prompt_strata(cfg, rows))

Every row must be a usable prompt: a line that is not a JSON object, or a row without a prompt, is one error
naming its line (a reward that silently trains on fewer prompts than given would be hard to notice).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from augury.align.data import AlignDataError, BadLine, read_jsonl
from augury.data.chat import ChatFormatError, render_chat, validate_messages
from augury.data.tokenizer import encode_documents

if TYPE_CHECKING:
    from augury.align.rl_config import RLConfig


def where(row, number: int) -> str:
    """"line N" of a row read from a file, else "row N" (its place in the list)."""
    return f"line {row.line}" if getattr(row, "line", 0) else f"row {number}"


def prompt_ids(tok, row: dict) -> tuple[list[int], bool]:
    """(ids, chat) for a prompt row: a message list in the chat format, or plain text after <|endoftext|>."""
    prompt = row.get("prompt")
    if isinstance(prompt, list):
        validate_messages(prompt)
        return render_chat(tok, prompt, add_generation_prompt=True).ids, True
    if isinstance(prompt, str) and prompt:
        return [tok.token_to_id("<|endoftext|>"), *encode_documents(tok, [prompt])[0]], False
    raise ValueError("a row needs a non-empty 'prompt' (text or a message list)")


def load_prompts(path: str, tok, context: int | None = None,
                 response_length: int = 0) -> tuple[list[dict], list[tuple[dict, list[int], bool]]]:
    """(rows, (row, ids, chat) per row) of a prompt file; AlignDataError naming the first unusable line (a
    prompt that leaves no room for `response_length` tokens in the model's `context` too: the engine would cut
    its start, and the sequence could not be trained on)."""
    rows = read_jsonl(path)
    if not rows:
        raise AlignDataError(f"{path} has no rows (JSONL rows with a 'prompt': text or a message list)")
    prompts = []
    for row in rows:
        if isinstance(row, BadLine):
            raise AlignDataError(f"{path}: line {row.line}: {row.reason}")
        try:
            ids, chat = prompt_ids(tok, row)
        except (ValueError, ChatFormatError) as err:
            raise AlignDataError(f"{path}: line {row.line}: {err}") from None
        if context is not None and len(ids) + response_length > context:
            raise AlignDataError(f"{path}: line {row.line}: the prompt is {len(ids)} tokens: with response_length "
                                 f"{response_length} it does not fit the model's context ({context} tokens)")
        prompts.append((row, ids, chat))
    return rows, prompts


def prompt_strata(cfg: RLConfig, rows: list[dict]) -> list[np.ndarray] | None:
    """The row indices of each value of `balance_column` (in sorted order of the values), or None."""
    if not cfg.balance_column:
        return None
    values: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        value = row.get(cfg.balance_column)
        if value in (None, ""):
            raise AlignDataError(f"{cfg.prompts}: {where(row, i + 1)} has no {cfg.balance_column!r} "
                                 f"(--balance_column needs it on every row)")
        values.setdefault(str(value), []).append(i)
    if len(values) > cfg.prompts_per_step:
        raise AlignDataError(f"--balance_column {cfg.balance_column}: {len(values)} values but prompts_per_step "
                             f"is {cfg.prompts_per_step}: each step could not draw every value")
    return [np.array(values[v]) for v in sorted(values)]


def step_prompts(cfg: RLConfig, step: int, n: int, strata: list[np.ndarray] | None) -> list[int]:
    """The prompt indices of a step, a function of (seed, step) alone (so a resumed run draws the same ones):
    uniform without replacement (a file with fewer rows than prompts_per_step gives each row as evenly as may be,
    not a smaller step), or an equal share of each stratum (the remainder to strata drawn at random)."""
    rng = np.random.default_rng([cfg.seed, step])
    if strata is None:
        rounds = -(-cfg.prompts_per_step // n)
        return [int(i) for i in np.concatenate([rng.permutation(n) for _ in range(rounds)])[:cfg.prompts_per_step]]
    share, extra = divmod(cfg.prompts_per_step, len(strata))
    bonus = set(rng.permutation(len(strata))[:extra].tolist())
    picked = []
    for k, rows in enumerate(strata):
        take = share + (k in bonus)
        picked += rng.choice(rows, size=take, replace=take > len(rows)).tolist()
    return [int(i) for i in picked]
