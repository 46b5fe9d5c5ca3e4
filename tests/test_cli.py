"""The `augury` dispatcher: help, unknown commands, bare boolean flags."""

import pytest

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


def test_function_cli_accepts_hyphenated_aliases():
    seen = {}

    def job(path: str, max_steps: int = 3):
        """A job.

        Args:
            path: where
            max_steps: how many
        """
        seen.update(path=path, max_steps=max_steps)

    cli.function_cli(job, ["x", "--max-steps", "5"], prog="job")
    assert seen == {"path": "x", "max_steps": 5}
    cli.function_cli(job, ["x", "--max_steps=7"], prog="job")
    assert seen == {"path": "x", "max_steps": 7}


def test_train_accepts_hyphenated_dotted_overrides():
    from augury.train.cli import parse_args

    hyphen = parse_args(["--optim.weight-decay", "0.05", "--optim.grad-clip=0.5", "--resume"])
    under = parse_args(["--optim.weight_decay", "0.05", "--optim.grad_clip=0.5", "--resume", "yes"])
    assert hyphen == under
    cfg, resume = under
    assert (cfg.optim.weight_decay, cfg.optim.grad_clip, resume) == (0.05, 0.5, True)
    assert parse_args(["--resume", "auto"])[1] == "auto" and parse_args([])[1] is False


def test_optional_config_sections_from_a_file_are_typed():
    """An optional nested section (`vision: VisionConfig | None`) read from a YAML file is its dataclass, not a dict."""
    from augury.data.images import ImageDataConfig
    from augury.model.vision import VisionConfig
    from augury.train.cli import parse_args

    cfg, _ = parse_args(["--config", "configs/train/vision-cpu.yaml"])
    assert isinstance(cfg.vision, VisionConfig) and isinstance(cfg.images, ImageDataConfig)
    text_only, _ = parse_args(["--config", "configs/train/quickstart.yaml"])
    assert text_only.vision is None and text_only.images is None


def test_a_config_file_that_is_not_yaml_is_named_with_its_line(tmp_path, capsys):
    import pytest

    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    for argv in (["serve", "--config", str(bad)], ["eval", f"--config={bad}"], ["monitor", "x.db", "--config",
                                                                               str(bad)]):
        with pytest.raises(SystemExit) as exit_:  # the exit code of any bad option
            cli.main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and f"{bad}, line 2, column 1: " in err and "<unicode string>" not in err
        assert err.startswith(f"augury {argv[0]}: error: ") and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["sft", "--lr", "abc"], "augury sft: error: --lr: Expected a float. Got value: abc"),
    (["train", "--model.depth", "x"], "augury train: error: --model.depth: Expected an int. Got value: x"),
    (["grader", "--nope", "1"], "augury grader: error: unrecognized arguments: --nope 1"),
    (["serve", "--nope"], "augury serve: error: unrecognized arguments: --nope"),
    (["fit", "--law", "power"], "augury fit: error: the following arguments are required"),
    (["data", "prepare", "--nope", "1"], "augury data prepare: error: unrecognized arguments: --nope 1"),
    (["ladder", "plan", "--nope", "1"], "augury ladder plan: error: unrecognized arguments: --nope 1"),
    (["ladder", "plan", "--ladder.rungs", "x"], "augury ladder plan: error: --ladder.rungs: Expected an int."),
    (["forecast", "--nope", "1"], "augury forecast: error: unrecognized arguments: --nope 1"),
])
def test_a_bad_flag_is_one_error_line_in_the_flags_spelling(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        code = cli.main(argv)  # a command that reports its own usage errors returns the exit code
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(message) and err.count("\n") == 1
    prog = " ".join(argv[:2]) if argv[0] in ("data", "ladder") else argv[0]
    assert err.rstrip().endswith(f"(options: augury {prog} --help)")


@pytest.mark.parametrize("argv, names", [
    (["align", "--help"], ["cpu-demo"]),
    (["rl-demo", "--help"], ["arithmetic"]),
    (["forecast", "--help"], ["smoke", "cpu-demo", "gpu", "naive-demo"]),
    (["ladder", "plan", "--help"], ["smoke", "cpu-demo", "gpu", "naive-demo"]),
])
def test_help_lists_the_preset_flag_read_before_the_parser(capsys, argv, names):
    # --preset is taken out of argv before each command's parser, so --help did not mention it
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # jsonargparse's own --help exits
        code = exit_.code
    assert code == 0
    out = capsys.readouterr().out
    usage = out[out.index("usage:"):]
    assert "--preset {" + ",".join(names) + "}" in " ".join(usage.split())
    options = usage[usage.index("options:"):]
    assert "--preset" in options and all(n in options for n in names)
    if argv[0] == "ladder":
        assert "--no_probe" in usage and "throughput probe" in options
