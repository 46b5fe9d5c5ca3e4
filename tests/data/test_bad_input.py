"""Every bad input gets one clear DataError naming the path, line or value, before anything is written."""

from __future__ import annotations

import json

import pytest

from augury import cli
from augury.data.config import DataConfig, DataError
from augury.data.prepare import prepare_data
from tests.data.conftest import write_corpus, write_jsonl


def prepare(source, **kw):
    kw.setdefault("vocab_size", 300)
    return prepare_data(DataConfig(source=str(source), **kw), log=lambda *_: None)


def assert_nothing_written(cache):
    assert not cache.exists() or not any(cache.iterdir())


def test_missing_folder(tmp_path, isolated_cache):
    with pytest.raises(DataError, match=r"corpus source '.*no-such-dir' does not exist"):
        prepare(tmp_path / "no-such-dir")
    assert_nothing_written(isolated_cache)


def test_empty_folder(tmp_path, isolated_cache):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"'.*empty' has no files with suffixes"):
        prepare(tmp_path / "empty")
    assert_nothing_written(isolated_cache)


def test_folder_of_empty_files(tmp_path):
    write_corpus(tmp_path / "c", {"a.txt": "", "b.txt": ""})
    with pytest.raises(DataError, match=r"has no readable documents among 2 files \(2 empty\)"):
        prepare(tmp_path / "c")


def test_non_utf8_skipped_with_a_count(tmp_path):
    root = write_corpus(tmp_path / "c", {"good.txt": "hello world\n" * 50, "more.txt": "other text\n" * 50})
    (root / "latin1.txt").write_bytes("café crème\n".encode("latin-1"))
    logs = []
    data = prepare_data(DataConfig(source=str(root), vocab_size=300), log=logs.append)
    assert data.manifest["skipped_non_utf8"] == 1
    assert data.manifest["skipped_non_utf8_documents"] == ["latin1.txt"]
    assert any("skipped 1 non-UTF-8 document(s)" in line and "latin1.txt" in line for line in logs)
    assert "latin1.txt" not in [r["id"] for r in data.documents()]


def test_non_utf8_error_names_the_file(tmp_path, isolated_cache):
    root = write_corpus(tmp_path / "c", {"good.txt": "hello\n"})
    (root / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt' is not valid UTF-8 .*at byte 3"):
        prepare(root, non_utf8="error")
    assert_nothing_written(isolated_cache)


def test_only_non_utf8_files_is_an_empty_corpus(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    (root / "a.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match=r"no readable documents among 1 files \(1 not UTF-8\)"):
        prepare(root)


def test_jsonl_bad_line_names_the_line(tmp_path, isolated_cache):
    lines = [{"text": "one"}, {"text": "two"}, '{"text": "three"', {"text": "four"}]
    path = write_jsonl(tmp_path / "d.jsonl", lines)
    with pytest.raises(DataError, match=r"d\.jsonl:3: not valid JSON"):
        prepare(path)
    assert_nothing_written(isolated_cache)


def test_jsonl_missing_field_names_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "one"}, {"body": "two"}])
    with pytest.raises(DataError, match=r"d\.jsonl:2: no field 'text'"):
        prepare(path)
    path = write_jsonl(tmp_path / "e.jsonl", [{"text": 5}])
    with pytest.raises(DataError, match=r"e\.jsonl:1: field 'text' is int, not a string"):
        prepare(path)


def test_jsonl_non_utf8_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps({"text": "ok " * 40}).encode() + b"\n" + b'{"text": "caf\xe9"}\n'
                     + json.dumps({"text": "fine " * 40}).encode() + b"\n")
    with pytest.raises(DataError, match=r"d\.jsonl:2 is not valid UTF-8"):
        prepare(path, non_utf8="error")
    assert prepare(path).manifest["skipped_non_utf8_documents"] == ["line:2"]


def test_jsonl_lone_surrogate_is_non_utf8(tmp_path, capsys):
    """JSON can spell a lone surrogate ("\\ud800") that UTF-8 cannot encode: skipped and counted, or refused."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "' + "ok " * 40 + '"}\n{"text": "bad \\ud800 surrogate"}\n{"text": "' + "fine " * 40
                    + '"}\n', encoding="ascii")
    with pytest.raises(DataError, match=r"d\.jsonl:2: field 'text' is not valid UTF-8 \(lone surrogate"):
        prepare(path, non_utf8="error")
    data = prepare(path)
    assert data.manifest["skipped_non_utf8_documents"] == ["line:2"]
    assert sorted(r["id"] for r in data.documents()) == ["line:1", "line:3"]
    assert cli.main(["data", "prepare", "--source", str(path), "--vocab_size", "300", "--non_utf8", "error"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lone surrogate" in err[0]


def test_a_file_that_is_not_jsonl(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"notes\.txt' is a file but not \.jsonl"):
        prepare(tmp_path / "notes.txt")


@pytest.mark.parametrize("field, value, message", [
    ("vocab_size", 100, "vocab_size must be an integer >= 265"),
    ("val_fraction", 1.0, r"val_fraction must be in \[0, 1\)"),
    ("non_utf8", "ignore", "non_utf8 must be 'skip' or 'error'"),
    ("max_bytes", 0, "max_bytes must be a positive integer"),
    ("extensions", ".txt", "extensions must be a list"),
    ("extensions", [], r"extensions must be a list .*got \[\]; None reads"),
    ("decontaminate", "yes", "decontaminate must be true or false"),
    ("eval_data_dir", "/no/such/evals", "eval_data_dir '/no/such/evals' is not a folder"),
])
def test_bad_config_values(corpus_dir, field, value, message):
    with pytest.raises(DataError, match=message):
        prepare(corpus_dir, **{field: value})


def test_cli_prepare_prints_summary(corpus_dir, capsys):
    assert cli.main(["data", "prepare", "--source", str(corpus_dir), "--vocab_size", "300"]) == 0
    out = capsys.readouterr().out
    assert "train:" in out and "val:" in out and "prepared data:" in out


def test_cli_prepare_with_config_file(corpus_dir, tmp_path, capsys):
    cfg = tmp_path / "data.yaml"
    cfg.write_text(f"source: {corpus_dir}\nvocab_size: 290\nval_fraction: 0.2\n")
    assert cli.main(["data", "prepare", "--config", str(cfg)]) == 0
    assert "vocab_size: 290" in capsys.readouterr().out


def test_cli_bad_source_is_one_line_error(tmp_path, capsys):
    assert cli.main(["data", "prepare", "--source", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("augury data prepare: error: corpus source") and "missing" in err[0]


@pytest.mark.parametrize("under", ["", "sub/dir"])
def test_cli_cache_dir_that_is_a_file(corpus_dir, tmp_path, capsys, under):
    (tmp_path / "afile").write_text("mine")
    cache = tmp_path / "afile" / under if under else tmp_path / "afile"
    argv = ["data", "prepare", "--source", str(corpus_dir), "--vocab_size", "300", "--cache_dir", str(cache)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("augury data prepare: error: cache_dir") and "is a file" in err[0]
    assert (tmp_path / "afile").read_text() == "mine"


def test_cli_unknown_subcommand(capsys):
    assert cli.main(["data", "frobnicate"]) == 2
    assert "unknown data command 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize("under", ["", "sub"])
def test_cli_cache_dir_that_cannot_be_written(corpus_dir, read_only_dir, capsys, under):
    cache = read_only_dir / under if under else read_only_dir
    argv = ["data", "prepare", "--source", str(corpus_dir), "--vocab_size", "300", "--cache_dir", str(cache)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("augury data prepare: error: cache_dir") and "not writable" in err[0]
