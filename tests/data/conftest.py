"""Tiny corpora written to tmp folders, and an isolated cache for every test."""

from __future__ import annotations

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
