"""The registry, the output type, and small helpers shared by every model family.

Every model returns `ModelOutput(logits, features)` from one forward pass: `features` is
the input of the final linear layer (after pooling/flatten), `model.classifier` is that
linear layer and `model.feature_dim` its input width, so `model.classifier(out.features)`
reproduces `out.logits`.
"""
from typing import NamedTuple

import torch
from torch import nn

from common import Registry

MODELS = Registry("model")


class ModelOutput(NamedTuple):
    logits: torch.Tensor    # (B, num_classes)
    features: torch.Tensor  # (B, feature_dim): penultimate features, the classifier's input


def scaled(channels: int, width: float) -> int:
    """A channel count times a width multiplier, rounded, at least 1."""
    return max(1, int(round(channels * width)))


def init_conv_bn(module: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) convolutions, BatchNorm at weight 1 / bias 0: the
    initialisation of the CIFAR ResNet/WRN reference code (linear layers keep torch's default)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
