"""Shared building blocks for the model families."""

from cnnlab.layers.activations import get_act, get_norm, get_pool
from cnnlab.layers.conv import ConvNormAct, conv_norm_act_layers
from cnnlab.layers.heads import mlp_head
from cnnlab.layers.inception import Inception, InceptionAux, basic_conv
from cnnlab.layers.init import INIT_SCHEMES, init_weights
from cnnlab.layers.residual import BasicBlock, Bottleneck, ResidualBlock, residual_stage

__all__ = [
    "INIT_SCHEMES",
    "BasicBlock",
    "Bottleneck",
    "ConvNormAct",
    "Inception",
    "InceptionAux",
    "ResidualBlock",
    "basic_conv",
    "conv_norm_act_layers",
    "get_act",
    "get_norm",
    "get_pool",
    "init_weights",
    "mlp_head",
    "residual_stage",
]
