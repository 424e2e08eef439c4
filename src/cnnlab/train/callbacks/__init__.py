"""Callbacks plugged into Trainer.fit, one file each."""

from cnnlab.train.callbacks.base import Callback, CallbackList
from cnnlab.train.callbacks.checkpoint import Checkpoint
from cnnlab.train.callbacks.early_stopping import EarlyStopping
from cnnlab.train.callbacks.freeze import FreezeSchedule
from cnnlab.train.callbacks.history import CSVLogger
from cnnlab.train.callbacks.lr_scheduler import LRScheduler
from cnnlab.train.callbacks.progress import ProgressBar
from cnnlab.train.callbacks.tensorboard import TensorBoard
from cnnlab.train.callbacks.terminate_nan import TerminateOnNaN
from cnnlab.train.callbacks.time_limit import TimeLimit

__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackList",
    "Checkpoint",
    "EarlyStopping",
    "FreezeSchedule",
    "LRScheduler",
    "ProgressBar",
    "TensorBoard",
    "TerminateOnNaN",
    "TimeLimit",
]
