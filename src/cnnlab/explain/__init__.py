"""What the network learned: filters, feature maps, saliency / Grad-CAM, activation maximization, maximally
activated patches, t-SNE of CNN codes, top losses, and the course's fixed edge filters; for localize, detect and
segment models, saliency and Grad-CAM of one box's or one pixel's score (`task_scores`).

Every function takes a model through its interface (named modules, forward_features, forward_head) and returns
arrays; the plot_* functions turn those into PNGs. Explanations run in float32, eval mode, without autocast.
"""

from cnnlab.explain._common import class_index, find_layer, format_layers, list_layers, read_image, to_input
from cnnlab.explain.edges import EDGE_FILTERS, apply_edge_filters, convolve, correlation_vs_convolution, cross_correlate
from cnnlab.explain.embedding import cnn_codes, embedding, plot_embedding, tsne
from cnnlab.explain.featuremaps import feature_maps, plot_feature_maps
from cnnlab.explain.filters import conv_filters, plot_filters
from cnnlab.explain.maximize import format_change, maximize, plot_maximized
from cnnlab.explain.patches import plot_patches, receptive_field, top_patches
from cnnlab.explain.saliency import METHODS, heatmaps, plot_saliency, saliency
from cnnlab.explain.task_scores import Explained, plot_task_saliency, task_score
from cnnlab.explain.top_losses import plot_top_losses, top_losses

__all__ = [
    "EDGE_FILTERS",
    "METHODS",
    "Explained",
    "apply_edge_filters",
    "class_index",
    "cnn_codes",
    "conv_filters",
    "convolve",
    "correlation_vs_convolution",
    "cross_correlate",
    "embedding",
    "feature_maps",
    "find_layer",
    "format_change",
    "format_layers",
    "heatmaps",
    "list_layers",
    "maximize",
    "plot_embedding",
    "plot_feature_maps",
    "plot_filters",
    "plot_maximized",
    "plot_patches",
    "plot_saliency",
    "plot_task_saliency",
    "plot_top_losses",
    "read_image",
    "receptive_field",
    "saliency",
    "task_score",
    "to_input",
    "top_losses",
    "top_patches",
    "tsne",
]
