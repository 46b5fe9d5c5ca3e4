"""The `augury` dispatcher: help, unknown commands, bare boolean flags."""

from augury import cli


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_command_is_a_clear_error(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_function_cli_accepts_bare_bool_flags():
    seen = {}

    def job(path: str, resume: bool = False, steps: int = 3):
        """A job.

        Args:
            path: where
            resume: continue
            steps: how many
        """
        seen.update(path=path, resume=resume, steps=steps)

    cli.function_cli(job, ["x", "--resume", "--steps", "5"], prog="job")
    assert seen == {"path": "x", "resume": True, "steps": 5}
