"""cnnlab: convolutional networks for image classification, end to end."""

__version__ = "0.1.0"

from cnnlab.data import ImageSet, load_dataset  # noqa: E402
from cnnlab.io import load_model, save_model  # noqa: E402
from cnnlab.models import create_model, list_models, register_model  # noqa: E402
from cnnlab.train import Trainer  # noqa: E402

__all__ = ["ImageSet", "Trainer", "create_model", "list_models", "load_dataset", "load_model", "register_model",
           "save_model"]  # fmt: skip
