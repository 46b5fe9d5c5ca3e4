"""Loss on a user-given folder of held-out text (e.g. WikiText-2's test file), for a second loss forecast.

The folder's files (sorted, UTF-8, suffixes .txt .raw .tokens .text; README/LICENSE-style files are skipped) are
joined with the corpus' <|endoftext|> separator, encoded with the forecast's tokenizer and cut into sequences of the
recipe's length; every run is measured on the same first `max_tokens` tokens in nats/token.

    ids = encode_folder("wikitext-2/", tokenizer, max_tokens=65536)
    loss = heldout_loss("runs/f/rungs/rung3", ids, seq_len=128)

forecast.json records the sha256 of the tokens scored (`tokens_sha256`); verification refuses other tokens
(`check_registered_text`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from augury.forecast.config import ForecastConfigError

TEXT_SUFFIXES = {".txt", ".raw", ".tokens", ".text"}


def encode_folder(folder: str | Path, tokenizer, max_tokens: int) -> np.ndarray:
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise ForecastConfigError(f"text_folder {str(folder)!r} holds no text files "
                                  f"({', '.join(sorted(TEXT_SUFFIXES))})")
    eot = tokenizer.token_to_id("<|endoftext|>")
    ids: list[int] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ForecastConfigError(f"text_folder: {path} is not UTF-8 text") from None
        ids += [eot] + tokenizer.encode(text).ids
        if len(ids) > max_tokens:
            break
    arr = np.asarray(ids[:max_tokens + 1], dtype=np.int64)
    if len(arr) < 2:
        raise ForecastConfigError(f"text_folder {str(folder)!r}: too little text")
    return arr


def folder_ids(cfg, data) -> np.ndarray:
    """The forecast's held-out text: `cfg.text_folder` encoded with the corpus' tokenizer, the first
    `recipe.eval_tokens` tokens (the same for every run)."""
    return encode_folder(cfg.text_folder, data.tokenizer(), cfg.recipe.eval_tokens)


def check_text_folder(cfg, data) -> None:
    """ForecastConfigError, before anything trains, when `cfg.text_folder` cannot be scored (no text files, not
    UTF-8, fewer tokens than one sequence): the rungs are first scored on it only after the whole ladder trained."""
    _windows(folder_ids(cfg, data), cfg.recipe.seq_len)


def _windows(ids: np.ndarray, seq_len: int) -> int:
    """How many whole sequences of `seq_len` (each with its next token) `ids` holds; at least one."""
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise ForecastConfigError(f"text_folder: {len(ids)} tokens, fewer than one sequence of {seq_len + 1}")
    return n


def tokens_sha256(ids: np.ndarray) -> str:
    """sha256 of the token ids scored, as little-endian int64: what forecast.json's `text` registers."""
    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i8").tobytes()).hexdigest()


def check_registered_text(text, ids: np.ndarray) -> None:
    """ForecastConfigError unless `ids` are the held-out tokens the forecast `text` (a LossForecast) registered:
    a forecast is verified on the text it was made for. A forecast registered before the tokens' sha256 was
    recorded is not checked."""
    if text.tokens_sha256 is not None and tokens_sha256(ids) != text.tokens_sha256:
        raise ForecastConfigError(
            f"text_folder {text.folder!r} has changed since the forecast was registered: forecast.json records its "
            f"{text.tokens:,} held-out tokens with sha256 {text.tokens_sha256}, the folder now gives {len(ids):,} "
            f"tokens with sha256 {tokens_sha256(ids)}; restore the folder's text as it was (the held-out forecast "
            f"is verified on the text it was made for)")


@torch.no_grad()
def heldout_loss(run_dir: str | Path, ids: np.ndarray, seq_len: int, batch_size: int = 16,
                 device: str = "cpu") -> float:
    """Mean next-token loss (nats/token) of a run's final model on `ids`, in windows of `seq_len`."""
    from augury.model.run import load_run

    model, _, _ = load_run(run_dir, device=device)
    n = _windows(ids, seq_len)
    x = torch.from_numpy(ids[:n * seq_len].reshape(n, seq_len))
    y = torch.from_numpy(ids[1:n * seq_len + 1].reshape(n, seq_len))
    total = 0.0
    for i in range(0, n, batch_size):
        total += float(model(x[i:i + batch_size].to(device), targets=y[i:i + batch_size].to(device),
                             reduction="none").double().sum())
    return total / (n * seq_len)
