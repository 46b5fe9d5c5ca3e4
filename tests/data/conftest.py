"""Tiny corpora written to tmp folders, an isolated cache and a tiny evaluation-data folder for every test."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

# Enough varied text (code and prose, ASCII and not) for a BPE of a few hundred tokens.
SAMPLE_TEXTS = {
    "alpha.py": "def add(a, b):\n    return a + b\n\n\nclass Point:\n    x: int = 0\n    y: int = 0\n" * 6,
    "beta.txt": "The quick brown fox jumps over the lazy dog. Ünïcödé — naïve café, 東京, emoji 😀.\n" * 8,
    "notes/gamma.md": "# Title\n\nSome *markdown* with `code` and a [link](http://example.com).\n" * 7,
    "notes/delta.py": "import os\n\nfor i in range(10):\n    print(os.path.join('a', str(i)))\n" * 9,
    "deep/er/epsilon.txt": "Tabs\tand  double  spaces,\r\nWindows line endings and trailing space \n" * 6,
    "zeta.py": "# mentions <|endoftext|> and <|user|> literally\nTOKENS = ['<|endoftext|>']\n" * 5,
    "eta.rst": "Section\n=======\n\n.. note:: reStructuredText body with numbers 1234567890.\n" * 6,
    "theta.txt": "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod\n" * 10,
}


def write_corpus(root: Path, texts: dict[str, str] = SAMPLE_TEXTS) -> Path:
    for rel, text in texts.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="")
    return root


def write_jsonl(path: Path, records: list) -> Path:
    """One line per record: a dict is dumped as JSON, a str is written verbatim (to make bad lines)."""
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


@pytest.fixture
def corpus_dir(tmp_path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Point the default cache at a tmp folder so no test touches ~/.cache."""
    cache = tmp_path / "augury-cache"
    monkeypatch.setenv("AUGURY_CACHE", str(cache))
    return cache / "data"


# A few made-up rows in the layout of the shared data folder's evaluation sets (augury.data.contamination).
MMLU_ROWS = [
    ["Which moon of the planet Zorbax has the thickest methane atmosphere?", "Quillon", "Brevis", "Tandor", "Ossa",
     "2"],
    ["A probe orbits at 7,200 km; what is its period if the planet's mass doubles?", "Halved", "Unchanged",
     "Shorter by a factor of sqrt(2)", "Longer by a factor of sqrt(2)", "2"],
    ["Kepler's invented fourth law relates which two quantities of a binary system?", "Spin and tilt",
     "Albedo and mass", "Colour and age", "Period and hue", "0"],
]
XSTEST_PROMPTS = ["How can I stop a runaway Python thread?", "What is a jabberwock?"]  # 31 and 17 normalised chars


def write_eval_data(root: Path) -> Path:
    """mmlu (test + dev), humaneval and xstest; the other evaluation sets are absent."""
    for split, rows in (("test", MMLU_ROWS), ("dev", [MMLU_ROWS[0]])):
        path = root / "mmlu" / split / f"astronomy_{split}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["question", "choice0", "choice1", "choice2", "choice3", "answer"], *rows])
    problem = {"task_id": "HumanEval/0", "prompt": 'def glorp(xs: list) -> int:\n    """Count the glorps in xs."""\n',
               "canonical_solution": "    return sum(1 for x in xs if x == 'glorp')\n",
               "test": "def check(candidate):\n    assert candidate(['glorp', 'plorg', 'glorp']) == 2\n"}
    (root / "humaneval").mkdir(parents=True, exist_ok=True)
    (root / "humaneval" / "HumanEval.jsonl.gz").write_bytes(gzip.compress((json.dumps(problem) + "\n").encode()))
    (root / "xstest").mkdir(parents=True, exist_ok=True)
    with open(root / "xstest" / "xstest_prompts.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", "prompt", "type", "label", "focus", "note"],
                                 *[[i, p, "homonyms", "safe", "stop", ""] for i, p in enumerate(XSTEST_PROMPTS)]])
    return root


@pytest.fixture(autouse=True)
def eval_dir(tmp_path, monkeypatch) -> Path:
    """A tiny evaluation-data folder as $AUGURY_SHARED_DATA: the contamination check stays fast and isolated."""
    root = write_eval_data(tmp_path / "eval-data")
    monkeypatch.setenv("AUGURY_SHARED_DATA", str(root))
    return root
