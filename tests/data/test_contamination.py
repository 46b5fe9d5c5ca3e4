"""The evaluation-set contamination finder: which substrings of an example are looked up, and where they are found."""

from __future__ import annotations

from augury.data import contamination
from augury.data.config import DataConfig


def test_example_keys():
    assert contamination.normalize("Ünï-Code, ÀB_c 東京 x2!") == "ünïcodeàbc東京x2"
    assert contamination.normalize("Hello, World_42!") == "helloworld42"
    assert contamination.example_keys("a" * 19) == []
    assert contamination.example_keys("abc" * 10) == ["abc" * 10]
    text = "".join(chr(ord("a") + i % 26) for i in range(150))
    assert contamination.example_keys(text) == [text[:50], text[50:100], text[100:]]


def test_scan_finds_keys_across_hashing_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(contamination, "_CHUNK", 64)
    root = tmp_path / "evals"
    (root / "xstest").mkdir(parents=True)
    prompt = "Where does a kite string end up after the storm?"
    (root / "xstest" / "xstest_prompts.csv").write_text(f"id,prompt\n1,{prompt}\n", encoding="utf-8")
    filler = "zq" * 40
    texts = [filler[:i] + prompt + filler for i in range(0, 80, 7)] + [filler * 3, prompt[:-2]]
    matched, report = contamination.find_contaminated(DataConfig(eval_data_dir=str(root)), texts)
    assert matched == [{"xstest"}] * (len(texts) - 2) + [set(), set()]
    assert report["sets"]["xstest"]["documents"] == len(texts) - 2

