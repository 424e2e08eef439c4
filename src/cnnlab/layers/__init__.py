"""Shared building blocks for the model families."""

from cnnlab.layers.activations import get_act, get_pool
from cnnlab.layers.init import INIT_SCHEMES, init_weights

__all__ = ["INIT_SCHEMES", "get_act", "get_pool", "init_weights"]
