"""Pretraining: configs, the training loop, schedules, checkpoints, runtime (device, DDP)."""

from augury.train.config import OptimConfig, TrainConfig, TrainConfigError, default_batch_size, default_lr, resolve
from augury.train.trainer import TrainingDiverged, train

__all__ = ["TrainConfig", "OptimConfig", "TrainConfigError", "TrainingDiverged", "train", "resolve",
           "default_lr", "default_batch_size"]
