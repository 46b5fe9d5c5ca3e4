"""Evaluation-set contamination check of a corpus, as in the GPT-4 technical report.

Each evaluation example (an MMLU question with its choices; a HumanEval prompt, and its solution with its
tests; ...) is normalised (Unicode NFKC, case-folded, letters and digits only) and three evenly spaced
50-character substrings of it (start, middle, end) are looked up in every document of the corpus, normalised the
same way; an example shorter than 50 characters is looked up whole, and one shorter than MIN_EXAMPLE_CHARS is not
checked (that little text also occurs in unrelated prose and code). A document holding any of them is
contaminated. An example is also looked up the way its evaluation prompts it (MMLU's lettered choices "A. ... B.
...", TruthfulQA's question on its own): a copy of eval prompts is contamination too.

    from augury.data.contamination import check_corpus
    kept, report = check_corpus(cfg, corpus.documents, log)   # report -> the prepared manifest

The evaluation sets are read from the folder the evals use: `DataConfig.eval_data_dir`, else
$AUGURY_SHARED_DATA, else `shared/data` beside the checkout. HH-RLHF is deliberately not an evaluation set
here: `augury align` pretrains on its conversations on purpose.

Speed: every position of the normalised corpus is hashed at once with numpy (a polynomial hash of the
MIN_EXAMPLE_CHARS characters starting there, i.e. the prefix of any key that can start there); the few
positions whose hash is some key's prefix hash are compared with the keys as strings, so a hash collision
never counts as a match.
"""

from __future__ import annotations

import functools
import os
import re
import string
import time
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from augury.data.config import DataConfig

SUBSTRING_CHARS = 50
SUBSTRINGS_PER_EXAMPLE = 3
MIN_EXAMPLE_CHARS = 20
# A question looked up without its choices (TruthfulQA's prompt layout) must be longer: "What is your favorite
# color?" (23 characters normalised) is a TruthfulQA question and also small talk in HH-RLHF's conversations.
MIN_ALONE_CHARS = 30
# Bump when normalize, example_keys or what the report says change, so data checked the old way is prepared
# again (the constants and EVAL_SETS are in the cache key themselves). 3: a folder holding no set is a check not run.
CHECK_VERSION = 3
CHECKOUT = Path(__file__).resolve().parents[2]
_NOT_ALNUM = re.compile(r"[\W_]+")
_ASCII_NOT_ALNUM = bytes(b for b in range(128) if not chr(b).isalnum())
_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64
_BASE_INV = pow(_BASE, -1, 1 << 64)
_CHUNK = 1 << 20  # positions hashed per numpy pass: bounded memory for a corpus of any size
_TABLE_BITS = 24  # prefilter of key-prefix hashes (16 MB of bools): about 0.4% of positions go on to a dict


@dataclass(frozen=True)
class EvalSet:
    """One evaluation set: its files (globs under the data folder) and the texts that make up an example.

    `parts` are `str.format` templates over a record's fields, looked up separately (each rendered, then cut into
    substrings): a part that is copied on its own, such as a HumanEval prompt without its solution, or an example
    in its evaluation's prompt layout (MMLU's "A. " labels put a letter between the choices), is still found.
    `alone` are templates looked up only when at least MIN_ALONE_CHARS long once normalised.
    """

    name: str
    patterns: tuple[str, ...]
    parts: tuple[str, ...]
    columns: tuple[str, ...] | None = None  # CSV files without a header row
    alone: tuple[str, ...] = ()


# The sets of augury/evals/tasks (few-shot dev files included: they are in every prompt). Not wikitext-2: its
# examples are whole Wikipedia articles, and HH-RLHF: see the module docstring.
# An MMLU prompt (augury/evals/tasks/mmlu*.yaml, lm-eval's layout) letters its choices; normalised, each letter
# sits between two choices, so the plain concatenation misses a copy of the prompts whose question is short.
EVAL_SETS: tuple[EvalSet, ...] = (
    EvalSet("mmlu", ("mmlu/test/*_test.csv", "mmlu/dev/*_dev.csv"),
            ("{question}\n{choice0}\n{choice1}\n{choice2}\n{choice3}",
             "{question}\nA. {choice0}\nB. {choice1}\nC. {choice2}\nD. {choice3}")),
    EvalSet("mmlu_ita", ("mmlu_ita/test/*_test_.csv", "mmlu_ita/dev/*_dev.csv"),
            ("{question}\n{A}\n{B}\n{C}\n{D}", "{question}\nA. {A}\nB. {B}\nC. {C}\nD. {D}"),
            columns=("question", "A", "B", "C", "D", "answer")),
    EvalSet("humaneval", ("humaneval/HumanEval.jsonl.gz",), ("{prompt}", "{canonical_solution}\n{test}")),
    # The question alone: the prompt ("Q: ...\nA:") shows one answer, not the list of choices.
    EvalSet("truthfulqa", ("truthfulqa/mc_task.json",), ("{question}\n{mc1_targets}",), alone=("{question}",)),
    EvalSet("xstest", ("xstest/xstest_prompts.csv",), ("{prompt}",)),
    EvalSet("advbench", ("advbench/harmful_behaviors.csv",), ("{goal}",)),
)


def normalize(text: str) -> str:
    """Case-folded letters and digits only: spacing, punctuation and markup do not hide a copy, nor do Unicode's
    equivalent spellings (NFKC: a decomposed "è", full-width "Ａ", the ligature "ﬁ")."""
    if text.isascii():  # the same result as the general path (ASCII is its own NFKC), several times faster
        return text.lower().encode("ascii").translate(None, _ASCII_NOT_ALNUM).decode("ascii")
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold()))


def example_keys(normalized: str, min_chars: int = MIN_EXAMPLE_CHARS) -> list[str]:
    """The substrings looked up for one normalised example: whole when short, else 3 evenly spaced."""
    n = len(normalized)
    if n < min_chars:
        return []
    if n <= SUBSTRING_CHARS:
        return [normalized]
    last = n - SUBSTRING_CHARS
    starts = sorted({round(i * last / (SUBSTRINGS_PER_EXAMPLE - 1)) for i in range(SUBSTRINGS_PER_EXAMPLE)})
    return [normalized[s:s + SUBSTRING_CHARS] for s in starts]


def eval_data_dir(cfg: DataConfig) -> tuple[Path | None, str]:
    """(folder, where it came from), or (None, why there is none)."""
    if cfg.eval_data_dir:
        path, origin = Path(cfg.eval_data_dir).expanduser(), "eval_data_dir"
    elif os.environ.get("AUGURY_SHARED_DATA"):
        path, origin = Path(os.environ["AUGURY_SHARED_DATA"]).expanduser(), "$AUGURY_SHARED_DATA"
    else:
        path, origin = CHECKOUT.parent / "shared" / "data", "shared/data beside the checkout"
    if not path.is_dir():
        return None, (f"no evaluation data folder: {origin} {str(path)!r} is not a folder "
                      f"(set eval_data_dir or $AUGURY_SHARED_DATA)")
    return path.resolve(), origin


def _set_files(root: Path, es: EvalSet) -> tuple[list[Path], list[str]]:
    files, missing = [], []
    for pattern in es.patterns:
        found = sorted(p for p in root.glob(pattern) if p.is_file())
        files += found
        if not found:
            missing.append(pattern)
    return files, missing


def identity(cfg: DataConfig) -> dict:
    """What the check's outcome depends on (for the cache key): the setting, the method, the eval files' stats."""
    out: dict = {"decontaminate": bool(cfg.decontaminate), "version": CHECK_VERSION,
                 "method": [SUBSTRING_CHARS, SUBSTRINGS_PER_EXAMPLE, MIN_EXAMPLE_CHARS, MIN_ALONE_CHARS,
                            repr(EVAL_SETS)]}
    root, why = eval_data_dir(cfg)
    if root is None:
        out["not_checked"] = why
        return out
    out["files"] = {}
    for es in EVAL_SETS:
        files, _ = _set_files(root, es)
        out["files"][es.name] = [[p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns]
                                 for p in files for st in [p.stat()]]
    return out


def _field_text(value) -> str:
    if isinstance(value, dict):  # TruthfulQA's targets: {answer: 0/1}
        return "\n".join(str(k) for k in value)
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


class _Index:
    """The keys of every readable evaluation set, with the prefix hashes the scan looks for."""

    def __init__(self, root: Path):
        from augury.data.records import TaskDataError, read_records

        self.sets: dict[str, dict] = {}
        self.keys: dict[str, list[tuple[str, int]]] = {}  # key -> (set, example number) it comes from
        for es in EVAL_SETS:
            files, missing = _set_files(root, es)
            if not files:
                self.sets[es.name] = {"checked": False, "reason": f"no file matches {', '.join(es.patterns)}"}
                continue
            try:
                records = [r for p in files for r in read_records(p, columns=list(es.columns) if es.columns
                                                                   else None)]
            except TaskDataError as err:
                self.sets[es.name] = {"checked": False, "reason": str(err)}
                continue
            templates = [(part, MIN_EXAMPLE_CHARS) for part in es.parts] + [(a, MIN_ALONE_CHARS) for a in es.alone]
            fields = {f for part, _ in templates for _, f, _, _ in string.Formatter().parse(part) if f}
            absent = sorted({f for r in records for f in fields if f not in r})
            if absent:
                self.sets[es.name] = {"checked": False, "reason": f"no field {', '.join(absent)} in {files[0]}"}
                continue
            too_short = 0
            for i, rec in enumerate(records):
                values = {f: _field_text(rec[f]) for f in fields}
                keys = list(dict.fromkeys(k for part, least in templates
                                          for k in example_keys(normalize(part.format_map(values)), least)))
                too_short += not keys
                for key in keys:
                    self.keys.setdefault(key, []).append((es.name, i))
            info = {"checked": True, "files": len(files), "examples": len(records), "too_short": too_short}
            if missing:
                info["missing"] = missing
            self.sets[es.name] = info
        self.prefix_lengths: dict[int, set[int]] = {}
        for key, h in zip(self.keys, _prefix_hashes(list(self.keys))):
            self.prefix_lengths.setdefault(h, set()).add(len(key))
        self.table = np.zeros(1 << _TABLE_BITS, dtype=bool)
        self.table[np.fromiter(self.prefix_lengths, dtype=np.uint64, count=len(self.prefix_lengths))
                   >> np.uint64(64 - _TABLE_BITS)] = True

    def scan(self, text: str) -> list[tuple[int, str]]:
        """(position, key) of every key occurring in `text` (normalised documents joined by NUL)."""
        found = []
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        for start in range(0, max(len(codes) - MIN_EXAMPLE_CHARS + 1, 0), _CHUNK):
            hashes = _window_hashes(codes[start:start + _CHUNK + MIN_EXAMPLE_CHARS - 1])
            for i in np.flatnonzero(self.table[hashes >> np.uint64(64 - _TABLE_BITS)]).tolist():
                for length in self.prefix_lengths.get(int(hashes[i]), ()):
                    key = text[start + i:start + i + length]
                    if key in self.keys:
                        found.append((start + i, key))
        return found


@functools.lru_cache(maxsize=2)
def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(over="ignore"):
        up = np.cumprod(np.full(n, _BASE, dtype=np.uint64))
        down = np.cumprod(np.full(n, _BASE_INV, dtype=np.uint64))
    one = np.ones(1, dtype=np.uint64)
    return np.concatenate([one, up[:-1]]), np.concatenate([one, down[:-1]])


def _window_hashes(codes: np.ndarray) -> np.ndarray:
    """sum_j (codes[i+j] + 1) * BASE^-j mod 2**64 over each window of MIN_EXAMPLE_CHARS: position-free, so a
    window hashes like the same characters at the start of a key."""
    up, down = _powers(_CHUNK + MIN_EXAMPLE_CHARS)
    m = len(codes)
    with np.errstate(over="ignore"):
        prefix = np.zeros(m + 1, dtype=np.uint64)
        np.cumsum((codes.astype(np.uint64) + np.uint64(1)) * down[:m], out=prefix[1:])
        return (prefix[MIN_EXAMPLE_CHARS:] - prefix[:-MIN_EXAMPLE_CHARS]) * up[:m - MIN_EXAMPLE_CHARS + 1]


def _prefix_hashes(keys: list[str]) -> list[int]:
    if not keys:
        return []
    codes = np.frombuffer("".join(k[:MIN_EXAMPLE_CHARS] for k in keys).encode("utf-32-le"), dtype=np.uint32)
    _, down = _powers(_CHUNK + MIN_EXAMPLE_CHARS)
    with np.errstate(over="ignore"):
        terms = (codes.astype(np.uint64) + np.uint64(1)).reshape(len(keys), MIN_EXAMPLE_CHARS)
        return (terms * down[:MIN_EXAMPLE_CHARS]).sum(axis=1, dtype=np.uint64).tolist()


@functools.lru_cache(maxsize=2)
def _index(root: Path, files: str) -> _Index:  # `files` (the stats) keys the cache: an edited file is reread
    return _Index(root)


def find_contaminated(cfg: DataConfig, texts: list[str]) -> tuple[list[set[str]] | None, dict]:
    """For each text, the evaluation sets it holds examples of; None when the check cannot run. Plus the report
    (counts per set; no text)."""
    t0 = time.perf_counter()
    root, origin = eval_data_dir(cfg)
    report: dict = {"checked": False, "decontaminate": bool(cfg.decontaminate)}
    if root is None:
        report["reason"] = origin
        return None, report
    index = _index(root, repr(identity(cfg)["files"]))
    if not any(info["checked"] for info in index.sets.values()):
        # A folder holding none of the sets (the one above the data, say) checks nothing: said as a check not
        # run, not summarised like a clean pass.
        report.update(reason=f"no evaluation set found in {origin} {str(root)!r} (expected e.g. "
                             f"{EVAL_SETS[0].patterns[0]}; set eval_data_dir or $AUGURY_SHARED_DATA to the "
                             f"evaluation data folder)", eval_data_dir=str(root),
                      sets={name: dict(info) for name, info in index.sets.items()})
        return None, report
    report.update(checked=True, eval_data_dir=str(root), eval_data_dir_from=origin,
                  method=f"{SUBSTRINGS_PER_EXAMPLE} evenly spaced {SUBSTRING_CHARS}-character substrings of each "
                         f"example and of its prompt layout (whole if shorter; not checked under "
                         f"{MIN_EXAMPLE_CHARS}), NFKC case-folded letters and digits only, looked up in every "
                         f"document", version=CHECK_VERSION,
                  sets={name: dict(info) for name, info in index.sets.items()})
    matched: list[set[str]] = [set() for _ in texts]
    examples: dict[str, set[int]] = {name: set() for name in index.sets}
    batch: list[int] = []
    size = 0
    for i in range(len(texts) + 1):
        if i < len(texts):
            batch.append(i)
            size += len(texts[i])
        if batch and (size >= _CHUNK or i == len(texts)):
            normalized = [normalize(texts[j]) for j in batch]
            starts = np.cumsum([0] + [len(t) + 1 for t in normalized[:-1]]).tolist()
            for pos, key in index.scan("\0".join(normalized)):
                doc = batch[bisect_right(starts, pos) - 1]
                for name, example in index.keys[key]:
                    matched[doc].add(name)
                    examples[name].add(example)
            batch, size = [], 0
    for name, info in report["sets"].items():
        if info["checked"]:
            info["contaminated_examples"] = len(examples[name])
            info["documents"] = sum(name in m for m in matched)
    report["documents_matched"] = sum(bool(m) for m in matched)
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return matched, report


def check_corpus(cfg: DataConfig, documents: list, log=print) -> tuple[list, dict]:
    """The documents to keep (all but the contaminated ones when cfg.decontaminate) and the manifest's report.
    Logs ids and counts only: some evaluation sets hold harmful text."""
    matched, report = find_contaminated(cfg, [d.text for d in documents])
    if matched is None:
        log(f"warning: evaluation-set contamination check not run: {report['reason']}")
        return documents, report
    hits = [(d.id, sorted(m)) for d, m in zip(documents, matched) if m]
    drop = bool(cfg.decontaminate)
    kept = [d for d, m in zip(documents, matched) if not (drop and m)]
    report["documents_dropped"] = len(documents) - len(kept)
    report["matched_documents"] = [{"id": i, "sets": s} for i, s in hits[:100]]
    log(describe(report))
    return kept, report


def describe(report: dict | None) -> str:
    """One or two lines about a manifest's contamination report (counts only)."""
    if report is None:
        return "contamination check: not recorded (prepared before the check existed)"
    if not report.get("checked"):
        return f"contamination check not run: {report.get('reason')}"
    sets = report["sets"]
    unchecked = [f"{n} ({i['reason']})" for n, i in sets.items() if not i["checked"]]
    line = f"contamination check ({report['seconds']:.1f}s, {report['eval_data_dir']}): "
    found = [f"{n} {i['documents']} ({i['contaminated_examples']} examples)"
             for n, i in sets.items() if i["checked"] and i["documents"]]
    if found:
        action = (f"{report['documents_dropped']} dropped" if report["documents_dropped"]
                  else "kept (decontaminate: false)")
        line += f"{report['documents_matched']} documents hold evaluation examples, {action}: " + ", ".join(found)
    else:
        line += "no document holds an example of " + ", ".join(n for n, i in sets.items() if i["checked"])
    if unchecked:
        line += "\ncontamination check skipped: " + "; ".join(unchecked)
    return line
