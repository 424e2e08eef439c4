"""Callbacks plugged into Trainer.fit, one file each."""

from cnnlab.train.callbacks.base import Callback, CallbackList
from cnnlab.train.callbacks.checkpoint import Checkpoint
from cnnlab.train.callbacks.early_stopping import EarlyStopping
from cnnlab.train.callbacks.history import CSVLogger
from cnnlab.train.callbacks.progress import ProgressBar

__all__ = ["CSVLogger", "Callback", "CallbackList", "Checkpoint", "EarlyStopping", "ProgressBar"]
