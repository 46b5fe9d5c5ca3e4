"""`augury train`: one pretraining run from a YAML config with dotted overrides.

    augury train --config configs/train/quickstart.yaml
    augury train --config configs/train/quickstart.yaml --model.depth 3 --optim.lr 0.004 --out runs/d3
    augury train --config runs/d3/config.yaml --resume          # continue an interrupted run
    augury train --config runs/d3/config.yaml --resume auto     # continue it if it has a checkpoint, else start
    torchrun --nproc_per_node 2 -m augury train --config ...    # data-parallel (DDP) on 2 processes
"""

from __future__ import annotations

import sys

from augury.command import underscore_flags
from augury.errors import UsageError


def build_parser():
    from jsonargparse import ActionConfigFile, ArgumentParser

    from augury.train.config import TrainConfig

    parser = ArgumentParser(prog="augury train", description="Pretrain a decoder-only Transformer.",
                            default_env=False, allow_abbrev=False)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of the options below.")
    parser.add_class_arguments(TrainConfig, None)
    parser.add_argument("--resume", nargs="?", const="yes", default="no", choices=["no", "yes", "auto"],
                        help="continue the run in --out from its newest intact checkpoint; 'auto': continue it if "
                             "there is one, else start it")
    return parser


def main(argv: list[str]) -> int:
    from augury.data import DataError
    from augury.model import ModelConfigError
    from augury.train.config import TrainConfigError
    from augury.train.trainer import TrainingDiverged, train

    parser = build_parser()
    ns = parser.parse_args(underscore_flags(argv))
    resume = {"no": False, "yes": True, "auto": "auto"}[ns.pop("resume")]
    ns.pop("config", None)
    cfg = parser.instantiate(ns) if hasattr(parser, "instantiate") else parser.instantiate_classes(ns)
    from augury.train.config import TrainConfig

    cfg = TrainConfig(**{k: getattr(cfg, k) for k in TrainConfig.__dataclass_fields__})
    try:
        train(cfg, resume=resume)
    except (TrainConfigError, ModelConfigError, DataError) as err:
        raise UsageError(str(err)) from None
    except TrainingDiverged as err:
        print(f"augury train: error: {err}", file=sys.stderr)
        return 1
    return 0
