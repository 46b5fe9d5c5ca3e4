"""Bad input to `augury serve`, `augury serve keys` and `augury monitor`: one line, exit 2, nothing started."""

from __future__ import annotations

import sqlite3

import pytest

from augury import cli


@pytest.fixture
def no_listening(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the server started listening")

    monkeypatch.setattr("uvicorn.run", refuse)


def _other_db(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    return path


def _bad_input(tmp_path, case):
    """(argv after `augury serve`, with RUN for the tiny run; expected message) of one bad input."""
    (tmp_path / "hf_empty").mkdir()
    (tmp_path / "hf_badcfg").mkdir()
    (tmp_path / "hf_badcfg" / "config.json").write_text("{bad")
    (tmp_path / "notdb.txt").write_text("model: [unclosed\n")
    (tmp_path / "folder").mkdir()
    _other_db(tmp_path / "other.db")
    return {
        "nothing": ([], "give a model (a run folder or hf:PATH) or --upstream URL"),
        "hf_empty": ([f"hf:{tmp_path / 'hf_empty'}"], "is not a Hugging Face model folder: no config.json"),
        "hf_badcfg": ([f"hf:{tmp_path / 'hf_badcfg'}"], "config.json: not a loadable model config"),
        "log_not_sqlite": (["RUN", "--log", str(tmp_path / "notdb.txt")], "notdb.txt is not an SQLite database"),
        "log_folder": (["RUN", "--log", str(tmp_path / "folder")], "folder is a folder"),
        "log_other_db": (["RUN", "--log", str(tmp_path / "other.db")], "other.db has no requests table"),
        "log_under_file": (["RUN", "--log", str(tmp_path / "notdb.txt" / "r.db")], "notdb.txt is not a folder"),
        "device_name": (["RUN", "--device", "cuda9"], "device 'cuda9' is not a torch device name"),
        "device_absent": (["RUN", "--device", "cuda:99"], "device 'cuda:99': this machine has"),
        "keys_folder": (["RUN", "--keys", str(tmp_path / "folder")], "folder is a folder; --keys names a JSON file"),
    }[case]


@pytest.mark.parametrize("case", ["nothing", "hf_empty", "hf_badcfg", "log_not_sqlite", "log_folder",
                                  "log_other_db", "log_under_file", "device_name", "device_absent", "keys_folder"])
def test_serve_bad_input_is_one_line_before_listening(case, tiny_run, tmp_path, capsys, no_listening):
    argv, message = _bad_input(tmp_path, case)
    argv = [str(tiny_run) if a == "RUN" else a for a in argv]
    if "--log" not in argv:
        argv += ["--log", str(tmp_path / "logs" / "r.db")]
    code = cli.main(["serve", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "logs").exists()  # checked before anything is written
    other = sqlite3.connect(tmp_path / "other.db")
    assert [r[0] for r in other.execute("SELECT name FROM sqlite_master")] == ["t"]  # not written into


def test_serve_keys_help_and_a_folder_as_keys_file(tmp_path, capsys):
    assert cli.main(["serve", "keys", "--help"]) == 0
    assert "usage: augury serve keys {add,revoke,list}" in capsys.readouterr().out
    assert cli.main(["serve", "keys", "add", "bob", "--keys", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a folder; --keys names a JSON file" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["add", "bob", "--keys", "FOLDER"], "is a folder; --keys names a JSON file"),
    (["add", "bad name", "--keys", "FILE"], "must be letters, digits"),
    (["revoke", "bob", "--keys", "FILE"], "no key named 'bob'"),
    (["add", "bob"], "--keys FILE is required"),
    (["frob", "--keys", "FILE"], "usage: augury serve keys"),
    (["list", "--keys", "FILE"], "does not exist"),
])
def test_serve_keys_errors_name_the_subcommand(tmp_path, capsys, argv, message):
    # docs/cli.md: a command with a subcommand names both in its error line
    argv = [{"FOLDER": str(tmp_path), "FILE": str(tmp_path / "keys.json")}.get(a, a) for a in argv]
    assert cli.main(["serve", "keys", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("augury serve keys: error: ") and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("case,message", [
    ("notdb.txt", "notdb.txt is not an SQLite database"),
    ("other.db", "other.db has no requests table"),
    ("folder", "folder is a folder, not an SQLite request log"),
    ("missing.db", "missing.db does not exist"),
])
def test_monitor_refuses_what_is_not_a_request_log(case, message, tmp_path, capsys):
    (tmp_path / "notdb.txt").write_text("not a database\n")
    (tmp_path / "folder").mkdir()
    _other_db(tmp_path / "other.db")
    code = cli.main(["monitor", str(tmp_path / case)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("flags, message", [
    (["--since_hours", "-1"], "--since_hours must be a number >= 0"),
    (["--since_hours", ".nan"], "--since_hours must be a number >= 0"),
    (["--max_flag_rate", "-0.1"], "--max_flag_rate must be in [0, 1]"),
    (["--max_flag_rate", "5"], "--max_flag_rate must be in [0, 1]"),
    (["--max_spike", "0"], "--max_spike must be a number > 0"),
    (["--max_requests", "-1"], "--max_requests must be >= 0"),
])
def test_monitor_refuses_thresholds_that_cannot_mean_anything(flags, message, tmp_path, capsys):
    # a negative window read as "everything" and a negative --max_requests listed every key, without a word
    from augury.serve.requestlog import RequestLog

    RequestLog(tmp_path / "r.db").close()
    code = cli.main(["monitor", str(tmp_path / "r.db"), *flags])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and message in captured.err and captured.err.count("\n") == 1, captured
