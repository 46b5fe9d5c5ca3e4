"""`augury train`: one pretraining run from a YAML config with dotted overrides.

    augury train --config configs/train/quickstart.yaml
    augury train --config configs/train/quickstart.yaml --model.depth 3 --optim.lr 0.004 --out runs/d3
    augury train --config runs/d3/config.yaml --resume          # continue an interrupted run
    augury train --config runs/d3/config.yaml --resume auto     # continue it if it has a checkpoint, else start
    torchrun --nproc_per_node 2 -m augury train --config ...    # data-parallel (DDP) on 2 processes
"""

from __future__ import annotations

import sys

from augury.errors import UsageError

# `true`/`false` as well as `yes`/`no`: every other command's boolean flags take them (`augury sft --resume true`).
RESUME = {"nargs": "?", "const": "yes", "default": "no", "choices": ["no", "yes", "auto", "true", "false"],
          "help": "continue the run in --out from its newest intact checkpoint ('true' = 'yes', 'false' = 'no'); "
                  "'auto': continue it if there is one, else start it"}


def parse_args(argv: list[str]):
    """(TrainConfig, resume) of a command line: `--config FILE.yaml`, dotted overrides, `--resume [yes|auto]`."""
    from augury.command import config_cli
    from augury.train.config import TrainConfig

    cfg, extra = config_cli(TrainConfig, argv, prog="augury train", description="Pretrain a decoder-only Transformer.",
                            options={"resume": RESUME})
    return cfg, {"no": False, "false": False, "yes": True, "true": True, "auto": "auto"}[extra["resume"]]


def main(argv: list[str]) -> int:
    from augury.data import DataError
    from augury.model import ModelConfigError
    from augury.model.weights import CheckpointError
    from augury.train.config import TrainConfigError
    from augury.train.trainer import TrainingDiverged, train

    cfg, resume = parse_args(argv)
    try:
        train(cfg, resume=resume)
    except (TrainConfigError, ModelConfigError, DataError, CheckpointError) as err:  # all before step 1
        raise UsageError(str(err)) from None
    except TrainingDiverged as err:
        print(f"augury train: error: {err}", file=sys.stderr)
        return 1
    return 0
