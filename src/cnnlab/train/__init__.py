"""Training: the Trainer, its callbacks (cnnlab.train.callbacks), optimizers, schedules, losses and precision."""

from cnnlab.train.callbacks import Callback, CSVLogger, EarlyStopping, ProgressBar
from cnnlab.train.losses import ClassificationLoss
from cnnlab.train.optim import build_optimizer
from cnnlab.train.schedules import make_schedule
from cnnlab.train.trainer import Trainer

__all__ = [
    "CSVLogger",
    "Callback",
    "ClassificationLoss",
    "EarlyStopping",
    "ProgressBar",
    "Trainer",
    "build_optimizer",
    "make_schedule",
]
