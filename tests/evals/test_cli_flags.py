"""`augury eval` flags: underscores are the spelling, hyphens an alias, bare booleans mean true."""

from augury.evals.cli import parse_args as _parse


def test_hyphenated_flags_are_aliases_of_the_underscore_spelling():
    hyphen = _parse(["--data-dir", "d", "--num-fewshot", "3", "--model-args", "a=1", "--chunk-size", "8",
                     "--list-tasks"])
    under = _parse(["--data_dir", "d", "--num_fewshot", "3", "--model_args", "a=1", "--chunk_size", "8",
                    "--list_tasks"])
    assert hyphen == under
    assert (under.data_dir, under.num_fewshot, under.model_args, under.chunk_size, under.list_tasks) == (
        "d", 3, "a=1", 8, True)


def test_bare_chat_is_true_and_absent_is_false():
    assert _parse(["--chat", "--tasks", "x"]).chat is True
    assert _parse(["--tasks", "x"]).chat is False


def test_fewshot_seed_defaults_to_lm_evals_and_can_be_set():
    assert _parse(["--tasks", "x"]).fewshot_seed == 1234  # lm-eval's default fewshot_random_seed
    assert _parse(["--fewshot_seed", "7"]).fewshot_seed == 7
    assert _parse(["--fewshot-seed", "7"]) == _parse(["--fewshot_seed", "7"])


def test_a_negative_fewshot_seed_is_refused():
    # random.Random seeds with |seed|: -7 would silently draw what 7 draws
    import pytest

    from augury.errors import UsageError

    with pytest.raises(UsageError, match="--fewshot_seed must be >= 0"):
        _parse(["--fewshot_seed", "-7"]).validate()
