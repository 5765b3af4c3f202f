"""MobileNetV1 (Howard et al. 2017), the ImageNet student of the KD papers (mdistiller's
`MobileNetV1`): a 3x3 stride-2 conv to 32 channels, then 13 depthwise-separable blocks
(depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU) up to 1024 channels at stride 32,
global average pool (7x7 at 224 input; adaptive here) and linear 1024 -> classes.
About 4.23M parameters with 1000 classes.
"""
import torch
from torch import nn

from models.base import MODELS, ModelOutput, init_conv_bn

# (output channels, stride) of the depthwise-separable blocks
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


class MobileNetV1(nn.Module):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        ch = max(1, int(32 * width))
        layers = _conv_bn_relu(in_channels, ch, 3, 2)
        for out, stride in BLOCKS:
            out = max(1, int(out * width))
            layers += _conv_bn_relu(ch, ch, 3, stride, groups=ch)  # depthwise
            layers += _conv_bn_relu(ch, out, 1)                     # pointwise
            ch = out
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = ch
        self.classifier = nn.Linear(ch, num_classes)
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = torch.flatten(self.pool(self.body(x)), 1)
        return ModelOutput(self.classifier(features), features)


@MODELS.register("MobileNetV1")
def mobilenetv1(num_classes: int = 100, in_channels: int = 3, width: float = 1.0) -> MobileNetV1:
    """ImageNet MobileNetV1 (the KD papers' R50 -> MobileNet student); pass num_classes=1000
    for ImageNet-1k. `width` is the width multiplier alpha (1.0 = the standard model)."""
    return MobileNetV1(num_classes, in_channels, width)
