"""Corpus discovery (stdlib, folders) and the deterministic hash split."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from augury.data import sources
from augury.data.config import DataConfig, DataError
from augury.data.sources import assign_splits, list_source_files, split_of


def test_stdlib_discovery_excludes_site_packages_and_tests():
    files = list_source_files(DataConfig(source="stdlib"))
    rels = {f.rel for f in files}
    assert "os.py" in rels and "json/__init__.py" in rels
    root = Path(sysconfig.get_paths()["stdlib"])
    assert (root / "test").is_dir() and not any(r.startswith("test/") for r in rels)
    for f in files:
        parts = f.rel.split("/")
        assert f.rel.endswith(".py")
        excluded = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
        assert not set(parts[:-1]) & excluded
    assert [f.rel for f in files] == sorted(rels)  # sorted: max_bytes takes a deterministic prefix


def test_stdlib_discovery_on_a_fake_layout(tmp_path, monkeypatch):
    lib = tmp_path / "lib" / "python3.x"
    for rel in ["os.py", "json/__init__.py", "site-packages/numpy/core.py", "test/test_os.py",
                "unittest/test/test_case.py", "idlelib/idle_test/test_x.py", "lib2to3/tests/data/bad.py",
                "unittest/case.py", "README.txt", "__pycache__/os.cpython-311.pyc"]:
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_text("x = 1\n")
    monkeypatch.setattr(sources, "stdlib_root", lambda: lib)
    rels = [f.rel for f in list_source_files(DataConfig(source="stdlib"))]
    assert rels == ["json/__init__.py", "os.py", "unittest/case.py"]
    # "stdlib+tests" adds the test suites, never the installed packages
    rels = [f.rel for f in list_source_files(DataConfig(source="stdlib+tests"))]
    assert rels == ["idlelib/idle_test/test_x.py", "json/__init__.py", "lib2to3/tests/data/bad.py", "os.py",
                    "test/test_os.py", "unittest/case.py", "unittest/test/test_case.py"]


def test_stdlib_with_tests_prepares_apart_and_says_when_the_suite_is_missing(tmp_path, monkeypatch):
    from augury.data.prepare import prepare_data

    lib = tmp_path / "lib"
    for rel in ["os.py", "json/__init__.py", "test/test_os.py"]:
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_text(f"# {rel}\n" + "def f(x):\n    return x + 1\n" * 200)
    monkeypatch.setattr(sources, "stdlib_root", lambda: lib)
    logs: list[str] = []
    plain = prepare_data(DataConfig(source="stdlib", vocab_size=300, cache_dir=str(tmp_path / "c")), log=logs.append)
    full = prepare_data(DataConfig(source="stdlib+tests", vocab_size=300, cache_dir=str(tmp_path / "c")),
                        log=logs.append)
    assert full.dir != plain.dir and full.dir.name.startswith("stdlib+tests-py")
    assert full.manifest["splits"]["train"]["documents"] + full.manifest["splits"]["val"]["documents"] == 3
    assert not any("no test suite" in line for line in logs)
    (lib / "test" / "test_os.py").unlink()
    (lib / "test").rmdir()
    logs.clear()
    prepare_data(DataConfig(source="stdlib+tests", vocab_size=300, cache_dir=str(tmp_path / "c")), log=logs.append)
    assert any("no test suite" in line for line in logs)


def test_folder_extensions_and_hidden_files(tmp_path):
    root = tmp_path / "c"
    for rel in ["a.txt", "b.md", "c.py", "d.bin", "e.TXT", ".hidden.txt", ".git/config.txt", "sub/f.txt"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("hello\n")

    def rels(ext):
        return [f.rel for f in list_source_files(DataConfig(source=str(root), extensions=ext))]

    assert rels(None) == ["a.txt", "b.md", "c.py", "e.TXT", "sub/f.txt"]
    assert rels([".txt"]) == ["a.txt", "e.TXT", "sub/f.txt"]
    assert rels(["md"]) == ["b.md"]
    assert rels(["*"]) == ["a.txt", "b.md", "c.py", "d.bin", "e.TXT", "sub/f.txt"]
    with pytest.raises(DataError, match=r"no files with suffixes \.rst"):
        rels([".rst"])


def test_split_is_a_fixed_function_of_the_id():
    ids = [f"pkg/module_{i}.py" for i in range(20000)]
    first = {i: split_of(i, 0.05) for i in ids}
    assert first == {i: split_of(i, 0.05) for i in reversed(ids)}
    share = sum(s == "val" for s in first.values()) / len(ids)
    assert 0.04 < share < 0.06  # binomial sd ~0.0015 at n=20000
    # Growing the fraction only moves documents into val, never out (nested held-out sets).
    assert all(split_of(i, 0.10) == "val" for i in ids if first[i] == "val")
    assert all(split_of(i, 0.0) == "train" for i in ids[:100])


def test_adding_documents_never_moves_existing_ones():
    sizes = {f"doc{i}.txt": 1000 + i for i in range(500)}
    before = assign_splits(sizes, 0.05)
    after = assign_splits({**sizes, **{f"new{i}.txt": 5000 for i in range(500)}}, 0.05)
    assert all(after[i] == before[i] == split_of(i, 0.05) for i in sizes)  # large corpus: no top-up


def test_tiny_corpus_still_gets_one_val_document():
    sizes = {"a.txt": 100, "b.txt": 100, "c.txt": 100}
    splits = assign_splits(sizes, 0.05)
    assert list(splits.values()).count("val") == 1 and "train" in splits.values()
    assert splits == assign_splits(dict(reversed(sizes.items())), 0.05)
    assert set(assign_splits(sizes, 0.0).values()) == {"train"}  # no val asked, none given
    assert assign_splits({"only.txt": 10}, 0.99) == {"only.txt": "train"}  # training data comes first


def test_small_val_is_topped_up_to_its_byte_share():
    sizes = {f"f{i:02d}.py": 100 * (i + 1) for i in range(20)}  # 21,000 bytes
    splits = assign_splits(sizes, 0.2)
    val_bytes = sum(n for d, n in sizes.items() if splits[d] == "val")
    assert val_bytes >= 0.2 * 21000 and "train" in splits.values()
    hashed_val = {d for d in sizes if split_of(d, 0.2) == "val"}
    assert hashed_val <= {d for d, s in splits.items() if s == "val"}  # hash-chosen documents stay in val


def test_a_file_name_that_is_not_utf8_is_read_under_an_escaped_id(tmp_path):
    # A Latin-1 name (an old archive unpacked on Linux): os gives it as a surrogate escape, which sha256 of the ID,
    # the log and the manifest cannot encode. The document is read; its ID spells the odd byte as \xe9.
    from augury.data.prepare import prepare_data

    root = tmp_path / "c"
    root.mkdir()
    try:
        (root / "caf\udce9.txt").write_bytes(b"coffee is brewed from roasted beans\n" * 20)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this filesystem refuses names that are not UTF-8")
    for name in ("tea.txt", "water.txt", "milk.txt"):
        (root / name).write_text(f"{name} is a drink many people like in the morning\n" * 20)
    assert [f.rel for f in list_source_files(DataConfig(source=str(root)))][0] == "caf\\xe9.txt"
    data = prepare_data(DataConfig(source=str(root), vocab_size=300), log=lambda *_: None)
    assert sorted(r["id"] for r in data.documents()) == ["caf\\xe9.txt", "milk.txt", "tea.txt", "water.txt"]
    assert data.document_text("caf\\xe9.txt") == "coffee is brewed from roasted beans\n" * 20


def test_a_symlinked_folder_is_read_once(tmp_path):
    # A corpus assembled from links to other folders (`ln -s /data/books corpus/books`): a linked file was read but
    # a linked folder was silently left out. Each folder is read once, so a link back up cannot loop.
    root, books = tmp_path / "corpus", tmp_path / "books"
    (root / "sub").mkdir(parents=True)
    books.mkdir()
    (root / "a.txt").write_text("a\n")
    (root / "sub" / "b.txt").write_text("b\n")
    (books / "c.txt").write_text("c\n")
    (root / "books").symlink_to(books, target_is_directory=True)
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)  # a loop
    (root / "z").symlink_to(root / "sub", target_is_directory=True)  # the same folder again
    rels = [f.rel for f in list_source_files(DataConfig(source=str(root)))]
    assert rels == ["a.txt", "books/c.txt", "sub/b.txt"]
