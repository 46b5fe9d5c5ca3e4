"""`augury ladder plan`: print a forecast's ladder (params, tokens, FLOPs, estimated time) before anything trains.

    augury ladder plan                                    # the cpu-demo preset's ladder, with a throughput probe
    augury ladder plan --preset gpu --no-probe
    augury ladder plan --config my.yaml --target.flops 1e15 --ladder.largest_fraction 0.001

The estimated times come from a short probe: a few real training steps of each distinct run shape on random
tokens (about a second each). The vocabulary size is the config's `data.vocab_size` (the tokenizer may learn
slightly fewer tokens on a small corpus).
"""

from __future__ import annotations

from augury.errors import UsageError


def main(argv: list[str]) -> int:
    from augury.forecast.checks import check_device, validate
    from augury.forecast.cli import parse_config, print_help
    from augury.forecast.config import ForecastConfigError
    from augury.forecast.ladder import check_runs_train, format_plan, learning_rates, plan_runs, probe_throughput

    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "plan" and ("-h" in argv or "--help" in argv)):
        if argv:
            print_help("augury ladder plan", __doc__, {"no_probe": {
                "action": "store_true", "help": "skip the throughput probe: the plan without estimated times "
                                                "(alias --no-probe)"}})
        else:
            print(__doc__)
        return 0
    if argv[0] != "plan":
        raise UsageError(f"unknown subcommand {argv[0]!r}; usage: augury ladder plan [--preset P] [--config F] "
                         f"[--no-probe]")
    rest = list(argv[1:])
    no_probe = ("--no-probe", "--no_probe")  # underscore spelling as for every option, hyphens as its alias
    probe = not any(a in no_probe for a in rest)
    rest = [a for a in rest if a not in no_probe]
    cfg = parse_config(rest, "augury ladder plan")
    try:
        validate(cfg)
        runs = plan_runs(cfg, cfg.data.vocab_size)
        check_runs_train(cfg, runs, cfg.data.vocab_size)
        if probe:
            check_device(cfg)
    except ForecastConfigError as err:
        raise UsageError(str(err), prog="augury ladder plan") from None
    rates = None
    if probe:
        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        rates = probe_throughput(cfg, runs, cfg.data.vocab_size)
    print(f"forecast {cfg.name!r}: vocab {cfg.data.vocab_size}, seq_len {cfg.recipe.seq_len}, "
          f"tokens/param {cfg.recipe.tokens_per_param:g}, C = flops_per_token x tokens, N = matmul params")
    print(format_plan(runs, rates, learning_rates(cfg, runs, cfg.data.vocab_size), asked=cfg.ladder.rungs))
    return 0
