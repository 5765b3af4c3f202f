"""MobileNetV2 for CIFAR (Sandler et al. 2018), the "half" variant of the CRD / mdistiller code.

`MobileNetV2` = expansion T = 6, width multiplier 0.5, CIFAR settings: stem 3x3 conv stride 2,
inverted residual stages (t, c, n, s) = (1,16,1,1) (T,24,2,1) (T,32,3,2) (T,64,4,2) (T,96,3,1)
(T,160,3,2) (T,320,1,1) with c scaled by the width, a final 1x1 conv to 1280 channels
(not scaled for width <= 1), average pool, linear 1280 -> classes. As in the reference,
every block has its 1x1 expansion conv, even when t = 1.
"""
import math

import torch
from torch import nn

from models.base import MODELS, ModelOutput, init_conv_bn


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_ch * expansion
        self.use_residual = stride == 1 and in_ch == out_ch
        self.conv = nn.Sequential(
            _conv_bn_relu(in_ch, hidden, 1),                                   # pointwise expand
            _conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),           # depthwise
            nn.Conv2d(hidden, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch),  # linear projection
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2Cifar(nn.Module):
    def __init__(self, expansion: int = 6, width: float = 0.5, num_classes: int = 100, in_channels: int = 3):
        super().__init__()
        settings = [(1, 16, 1, 1), (expansion, 24, 2, 1), (expansion, 32, 3, 2), (expansion, 64, 4, 2),
                    (expansion, 96, 3, 1), (expansion, 160, 3, 2), (expansion, 320, 1, 1)]
        ch = int(32 * width)
        self.stem = _conv_bn_relu(in_channels, ch, 3, 2)
        stages = []
        for t, c, n, s in settings:
            out_ch = int(c * width)
            blocks = []
            for j in range(n):
                blocks.append(InvertedResidual(ch, out_ch, s if j == 0 else 1, t))
                ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        last = 1280 if width <= 1.0 else int(math.ceil(1280 * width / 8) * 8)
        self.head = _conv_bn_relu(ch, last, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = last
        self.classifier = nn.Linear(last, num_classes)
        init_conv_bn(self)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        x = self.head(self.stages(self.stem(x)))
        features = torch.flatten(self.pool(x), 1)
        return ModelOutput(self.classifier(features), features)


@MODELS.register("MobileNetV2")
def mobilenetv2_half(num_classes: int = 100, in_channels: int = 3, expansion: int = 6,
                     width: float = 0.5) -> MobileNetV2Cifar:
    """CIFAR MobileNetV2 "half" (expansion 6, width 0.5): the KD papers' MobileNetV2 student."""
    return MobileNetV2Cifar(expansion, width, num_classes, in_channels)
