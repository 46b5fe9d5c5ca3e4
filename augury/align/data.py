"""Post-training data in TRL's shapes, tokenized with a run's tokenizer, with per-row errors counted.

    examples, report = load_sft_examples("sft.jsonl", tok, 512)  # {"messages"}, {"prompt", "completion"}, {"text"}
    pairs, report = load_preference_pairs("prefs.jsonl", tok, 512)   # rows: {"prompt", "chosen", "rejected"}
    rows, report = hh_rlhf_rows("../shared/data/hh-rlhf/helpful-base/test.jsonl.gz")  # transcripts -> preference rows

Shapes (TRL's): conversational `messages` (the loss covers the assistant turns), `prompt`/`completion` as plain
strings (the loss covers the completion) or as message lists (rendered in the chat format), language-modelling
`text` (the loss covers all of it: plain text kept in an SFT mix), and preferences
`prompt`/`chosen`/`rejected` (plain strings, or message lists whose last turn is the assistant's; an optional
`margin` column as in TRL; without `prompt`, chosen and rejected hold the whole conversation and the prompt is
their common beginning, as TRL extracts it). A row that
cannot be used is skipped and counted by reason in the `LoadReport` (with the line numbers of the first few); when
more than half of a file's rows fail, loading stops with one error naming the reasons, so most of the data is never
dropped silently.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from augury.data.chat import ChatFormatError, render_chat, validate_messages
from augury.data.tokenizer import encode_documents


class AlignDataError(ValueError):
    """Data that cannot be used (a missing file, or most rows unusable)."""


@dataclass
class SFTExample:
    ids: list[int]
    loss_mask: list[bool]  # per id: the model is trained to predict this token


@dataclass
class PreferencePair:
    chosen: list[int]  # prompt + chosen reply
    rejected: list[int]  # prompt + rejected reply
    margin: float = 0.0  # TRL's optional `margin` column: how far chosen should score above rejected


@dataclass
class LoadReport:
    path: str
    rows: int = 0
    used: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> rows
    lines: dict = field(default_factory=dict)  # reason -> line numbers of its first few rows

    def skip(self, row, reason: str) -> None:
        reason = reason[:200]
        self.skipped[reason] += 1
        line = getattr(row, "line", 0)
        if line and len(self.lines.setdefault(reason, [])) < 3:
            self.lines[reason].append(line)

    def summary(self) -> str:
        def where(why: str, n: int) -> str:
            lines = self.lines.get(why, [])
            if not lines:
                return ""
            return f" at line{'s' if n > 1 else ''} {', '.join(map(str, lines))}{', ...' if n > len(lines) else ''}"

        reasons = "; ".join(f"{n} {why}{where(why, n)}" for why, n in self.skipped.most_common())
        return f"{self.path}: {self.used} of {self.rows} rows used" + (f" (skipped: {reasons})" if reasons else "")


class Row(dict):
    """A JSONL row (a dict) that knows its line number, for error messages."""

    line: int = 0


@dataclass(frozen=True)
class BadLine:
    """A JSONL line that is not a JSON object: false in a boolean test (where rows are filtered with `if row`),
    with its line number and why."""

    line: int
    reason: str

    def __bool__(self) -> bool:
        return False


def read_jsonl(path: str | Path) -> list[Row | BadLine]:
    """Rows of a JSONL file (.gz too), each a `Row` with its line number; a line that is not a JSON object is a
    `BadLine` (counted, or refused, by the caller)."""
    path = Path(path)
    if path.is_dir():
        raise AlignDataError(f"{path} is a directory, not a JSONL file")
    if not path.is_file():
        raise AlignDataError(f"{path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    rows: list[Row | BadLine] = []
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                rows.append(BadLine(number, f"not valid JSON ({err.msg})"))
                continue
            if isinstance(obj, dict):
                row = Row(obj)
                row.line = number
                rows.append(row)
            else:
                rows.append(BadLine(number, f"not a JSON object (a {type(obj).__name__})"))
    return rows


def tokenize_rows(rows: list, make, where: str, require_rows: bool = False) -> tuple[list, LoadReport]:
    """`make(row)` for every row; a row it refuses (ValueError) is skipped and counted by reason in the report.

    More than half of the rows refused is one error naming the reasons; so is an empty file when `require_rows`.
    """
    report = LoadReport(where)
    out = []
    for row in rows:
        report.rows += 1
        if isinstance(row, BadLine):
            report.skip(row, row.reason)
            continue
        try:
            out.append(make(row))
        except (ValueError, ChatFormatError) as err:
            report.skip(row, str(err))
    report.used = len(out)
    if require_rows and report.rows == 0:
        raise AlignDataError(f"{where} has no rows")
    if report.used * 2 < report.rows:
        raise AlignDataError(f"{report.summary()}: most rows are unusable; fix the data (TRL shapes: "
                             f"messages, prompt/completion, text, prompt/chosen/rejected)")
    return out, report


def without_eos(text: str) -> str:
    """`text` less one closing "<|endoftext|>": augury adds that token by id, and TRL adds its EOS only to a
    string that does not already end with it, so data made for it may carry the spelling (encoded as text, it
    would teach the model to write it before stopping)."""
    return text.removesuffix("<|endoftext|>")


def refuse_empty_replies(messages: list) -> None:
    """ValueError when an assistant turn is blank: trained on, it teaches the model to end its reply at once (the
    chat counterpart of an empty completion)."""
    for i, m in enumerate(messages):
        if m["role"] == "assistant" and not m["content"].strip():
            raise ValueError(f"empty assistant turn (message {i})")


def sft_example(tok, row: dict, max_len: int) -> SFTExample:
    """One row as ids and loss mask; ValueError with the reason when the row cannot be used."""
    if "messages" in row:
        validate_messages(row["messages"], need_assistant=True)
        refuse_empty_replies(row["messages"])
        enc = render_chat(tok, row["messages"])
        ids, mask = enc.ids, enc.assistant_mask
    elif "prompt" in row and "completion" in row:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, list) and isinstance(completion, list):
            validate_messages(completion, need_assistant=True)
            refuse_empty_replies(completion)
            enc, start = render_chat(tok, prompt + completion), len(render_chat(tok, prompt).ids)
            ids, mask = enc.ids, [m and i >= start for i, m in enumerate(enc.assistant_mask)]
        elif isinstance(prompt, str) and isinstance(completion, str):
            completion = without_eos(completion)
            if not completion.strip():
                raise ValueError("empty completion")
            p_ids, c_ids = encode_documents(tok, [prompt, completion])
            eot = tok.token_to_id("<|endoftext|>")
            ids = [eot, *p_ids, *c_ids, eot]
            mask = [False] * (1 + len(p_ids)) + [True] * (len(c_ids) + 1)
        else:
            raise ValueError("prompt and completion must both be strings or both message lists")
    elif "text" in row:
        if not isinstance(row["text"], str) or not without_eos(row["text"]).strip():
            raise ValueError("text must be a non-empty string")
        eot = tok.token_to_id("<|endoftext|>")
        ids = [eot, *encode_documents(tok, [without_eos(row["text"])])[0], eot]
        mask = [False] + [True] * (len(ids) - 1)
    else:
        raise ValueError("no 'messages', no 'prompt'/'completion' and no 'text'")
    if not any(mask):
        raise ValueError("nothing to learn from (no assistant or completion tokens)")
    if len(ids) > max_len:
        raise ValueError(f"longer than the model's context ({max_len} tokens)")
    return SFTExample(ids, mask)


def load_sft_examples(path: str | Path, tok, max_len: int) -> tuple[list[SFTExample], LoadReport]:
    return tokenize_rows(read_jsonl(path), lambda row: sft_example(tok, row, max_len), str(path), require_rows=True)


def scored_sequence(tok, prompt, reply, max_len: int, strict: bool = True) -> list[int]:
    """The ids a reward model scores for (prompt, reply): plain strings, or message lists in the chat format.

    `strict` (a training pair) refuses an empty reply, a conversational reply whose last turn is not the
    assistant's and a sequence longer than `max_len`; otherwise (scoring a
    policy's reply, which must get a score whatever it is) an empty reply is scored as it stands and a long
    sequence keeps its last `max_len` ids, where the reply is and where the reward head reads."""
    if isinstance(prompt, str) and isinstance(reply, str):
        reply = without_eos(reply)
        if strict and not reply.strip():
            raise ValueError("empty completion")
        eot = tok.token_to_id("<|endoftext|>")
        p, r = encode_documents(tok, [prompt, reply])
        ids = [eot, *p, *r, eot]
    elif isinstance(prompt, list) and isinstance(reply, list):
        validate_messages(prompt + reply, need_assistant=True)
        if strict and (not reply or reply[-1]["role"] != "assistant"):
            # the reward head reads the sequence's last token: the end of whatever turn comes last
            last = f"the {reply[-1]['role']}'s" if reply else "missing"
            raise ValueError(f"a reply's last turn is {last}, not the assistant's: the reward would be read at the "
                             f"end of that turn")
        if strict:
            refuse_empty_replies(reply)
        ids = render_chat(tok, prompt + reply).ids
    else:
        raise ValueError("prompt and replies must all be strings or all message lists")
    if len(ids) > max_len:
        if strict:
            raise ValueError(f"longer than the model's context ({max_len} tokens)")
        ids = ids[-max_len:]
    return ids


def with_prompt(row):
    """A preference row with its prompt explicit, as TRL's `maybe_extract_prompt` makes it: a row without a
    `prompt` (or with a string prompt beside conversational replies) holds the whole conversation in `chosen` and
    `rejected`, and the prompt is their common beginning. Any other row is returned as it is."""
    if not isinstance(row, dict) or "chosen" not in row or "rejected" not in row:
        return row
    chosen, rejected = row["chosen"], row["rejected"]
    if "prompt" in row and isinstance(row["prompt"], list) == isinstance(chosen, list):
        return row
    if not (isinstance(chosen, str) and isinstance(rejected, str) or
            isinstance(chosen, list) and isinstance(rejected, list)):
        return row  # refused by preference_pair
    idx = 0
    while idx < min(len(chosen), len(rejected)) and chosen[idx] == rejected[idx]:
        idx += 1
    if isinstance(chosen, str) and idx > 0 and chosen[idx - 1] == " ":  # as TRL: the reply keeps its leading space
        idx -= 1
    out = Row({**row, "prompt": chosen[:idx], "chosen": chosen[idx:], "rejected": rejected[idx:]})
    out.line = getattr(row, "line", 0)
    return out


def preference_pair(tok, row: dict, max_len: int) -> PreferencePair:
    missing = [k for k in ("chosen", "rejected") if k not in row]
    if missing:
        raise ValueError(f"missing {missing}")
    if row["chosen"] == row["rejected"]:
        raise ValueError("chosen and rejected are identical")
    row = with_prompt(row)
    if isinstance(row["prompt"], list) and not row["prompt"]:
        raise ValueError("chosen and rejected share no prompt")
    margin = row.get("margin", 0.0)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin):
        raise ValueError(f"margin must be a finite number, got {margin!r:.50}")
    return PreferencePair(scored_sequence(tok, row["prompt"], row["chosen"], max_len),
                          scored_sequence(tok, row["prompt"], row["rejected"], max_len), float(margin))


def load_preference_pairs(path: str | Path, tok, max_len: int) -> tuple[list[PreferencePair], LoadReport]:
    return tokenize_rows(read_jsonl(path), lambda row: preference_pair(tok, row, max_len), str(path),
                         require_rows=True)


def parse_transcript(text: str) -> list[dict]:
    """An HH-RLHF transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") as messages; ValueError if malformed."""
    messages = []
    for chunk in text.split("\n\n"):
        for speaker, role in (("Human:", "user"), ("Assistant:", "assistant")):
            if chunk.startswith(speaker):
                messages.append({"role": role, "content": chunk[len(speaker):].strip()})
                break
        else:
            if not messages:
                if chunk.strip():
                    raise ValueError("text before the first turn")
                continue
            messages[-1]["content"] += "\n\n" + chunk  # a turn that spans paragraphs
    if not messages or messages[0]["role"] != "user" or messages[-1]["role"] != "assistant":
        raise ValueError("a transcript must start with Human: and end with Assistant:")
    return messages


def hh_rlhf_rows(path: str | Path) -> tuple[list[dict], LoadReport]:
    """HH-RLHF pairs as TRL preference rows (conversational: prompt turns, chosen and rejected final replies)."""
    report = LoadReport(str(path))
    rows = []
    for raw in read_jsonl(path):
        report.rows += 1
        try:
            if isinstance(raw, BadLine):
                raise ValueError(raw.reason)
            chosen, rejected = parse_transcript(raw["chosen"]), parse_transcript(raw["rejected"])
            if chosen[:-1] != rejected[:-1]:
                raise ValueError("chosen and rejected differ before the last reply")
            row = Row(prompt=chosen[:-1], chosen=chosen[-1:], rejected=rejected[-1:])
            row.line = raw.line  # a row skipped later (too long, say) is reported at its line too
            rows.append(row)
        except KeyError as err:
            report.skip(raw, f"no {err} transcript")
        except (ValueError, TypeError) as err:
            report.skip(raw, str(err))
    report.used = len(rows)
    if report.rows == 0:
        raise AlignDataError(f"{report.path} has no rows")
    if report.used * 2 < report.rows:
        raise AlignDataError(f"{report.summary()}: most rows are unusable")
    return rows, report


def split_held_out(rows: list, held_out: float, key=None, at_least_one: bool = False) -> tuple[list, list]:
    """Deterministic split by conversation: a row is held out when the hash of its first turn that is not a system
    message (of a `text` row: its text) falls below `held_out` (the same conversation lands on the same side on
    every machine and every run). With `at_least_one`, a `held_out` > 0 that the hashes leave empty still holds out
    the lowest-hashed conversation (a small file otherwise trains without any validation)."""
    def first_turn(row):
        if not isinstance(row, dict):
            return repr(row)
        if "messages" not in row and "prompt" not in row and "text" in row:  # a document: itself
            return json.dumps(row["text"])
        msgs = row.get("messages") or row.get("prompt")
        if isinstance(msgs, list) and msgs:
            # a system message is usually shared by every row: keyed on it, all would land on one side
            turns = [m for m in msgs if not (isinstance(m, dict) and m.get("role") == "system")]
            msgs = (turns or msgs)[0]
        return json.dumps(msgs, sort_keys=True)

    key = key or first_turn
    hashes = [int.from_bytes(hashlib.sha256(key(row).encode()).digest()[:8], "big") / 2**64 for row in rows]
    lowest = min(hashes, default=None)
    force = at_least_one and held_out > 0 and len(set(hashes)) > 1 and lowest >= held_out
    train, held = [], []
    for row, h in zip(rows, hashes):
        (held if h < held_out or (force and h == lowest) else train).append(row)
    return train, held
