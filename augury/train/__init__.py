"""Pretraining: configs, the training loop, schedules, checkpoints, runtime (device, DDP).

    augury train --config configs/train/quickstart.yaml          # the command line (augury/train/cli.py)

    from augury.train import TrainConfig, train
    summary = train(TrainConfig(out="runs/d2"), resume="auto")
"""

from augury.train.config import OptimConfig, TrainConfig, TrainConfigError, default_batch_size, default_lr, resolve
from augury.train.trainer import TrainingDiverged, train

__all__ = ["TrainConfig", "OptimConfig", "TrainConfigError", "TrainingDiverged", "train", "resolve",
           "default_lr", "default_batch_size"]
