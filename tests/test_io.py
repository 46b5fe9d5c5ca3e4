"""augury.io's atomic writes: the file a later step trusts is never partial, and is readable as a plain write's."""

import os
import stat

import pytest

from augury.io import atomic_write_json, atomic_write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_an_atomic_write_gets_the_mode_a_plain_write_gets(tmp_path, umask_022):
    # mkstemp's owner-only 0600 made a run's manifest and config unreadable to another account or a container
    atomic_write_json(tmp_path / "manifest.json", {"a": 1})
    (tmp_path / "plain.txt").write_text("x")
    assert stat.S_IMODE((tmp_path / "manifest.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o644


def test_an_atomic_rewrite_keeps_the_files_own_mode(tmp_path, umask_022):
    target = tmp_path / "keys.txt"
    atomic_write_text(target, "old")
    target.chmod(0o600)  # a user who locked a file down keeps it locked when augury rewrites it
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keys.txt"]  # no temporary file left behind


def test_an_exclusive_write_never_replaces_a_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "forecast.json"
    atomic_write_json(target, {"first": 1}, exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write_json(target, {"second": 2}, exclusive=True)
    assert target.read_text() == '{\n  "first": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["forecast.json"]


def test_a_folder_that_cannot_be_written_is_named_before_any_work(read_only_dir):
    from augury.io import not_a_folder

    assert not_a_folder(read_only_dir) == f"{read_only_dir} is not writable (no permission to create files in it)"
    assert not_a_folder(read_only_dir / "new" / "run") == (
        f"{read_only_dir / 'new' / 'run'} cannot be made: {read_only_dir} is not writable")
    assert not_a_folder(read_only_dir.parent) is None
