"""Model registry and families: `create_model(name, num_classes=, in_chans=)`, `list_models(pattern)`."""

from cnnlab.models import alexnet, googlenet, lecture, lenet, notation, resnet, vgg  # noqa: F401  (registers the families)
from cnnlab.models._base import main_output
from cnnlab.models._registry import create_model, is_model, list_models, register_model

__all__ = ["create_model", "is_model", "list_models", "main_output", "register_model"]
