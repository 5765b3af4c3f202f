"""ShuffleNet V2 1x for CIFAR (Ma et al. 2018), as in the CRD / mdistiller code (`ShuffleV2`).

Stem 1x1 conv to 24 channels (stride 1); three stages (116, 232, 464 channels) each a
stride-2 down block followed by 3 / 7 / 3 basic blocks; a 1x1 conv to 1024, average pool,
linear 1024 -> classes. A basic block splits the channels in half, transforms one half
(1x1, depthwise 3x3, 1x1) and concatenates it back before a 2-group channel shuffle; a down
block runs two strided branches on the whole input and concatenates them.
"""
import torch
from torch import nn

from models.base import MODELS, ModelOutput
from models.shufflenetv1 import channel_shuffle


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out_ch))


class SplitBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.keep = channels - half
        self.branch = nn.Sequential(
            _conv_bn(half, half, 1), nn.ReLU(inplace=True),
            _conv_bn(half, half, 3, groups=half),
            _conv_bn(half, half, 1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x[:, :self.keep], x[:, self.keep:]
        return channel_shuffle(torch.cat([x1, self.branch(x2)], 1), 2)


class DownBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        mid = out_ch // 2
        self.left = nn.Sequential(
            _conv_bn(in_ch, in_ch, 3, 2, groups=in_ch),
            _conv_bn(in_ch, mid, 1), nn.ReLU(inplace=True))
        self.right = nn.Sequential(
            _conv_bn(in_ch, mid, 1), nn.ReLU(inplace=True),
            _conv_bn(mid, mid, 3, 2, groups=mid),
            _conv_bn(mid, mid, 1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(torch.cat([self.left(x), self.right(x)], 1), 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, stage_widths=(116, 232, 464), num_blocks=(3, 7, 3), last: int = 1024,
                 num_classes: int = 100, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(in_channels, 24, 1), nn.ReLU(inplace=True))
        ch = 24
        stages = []
        for width, n in zip(stage_widths, num_blocks):
            stages.append(nn.Sequential(DownBlock(ch, width), *[SplitBlock(width) for _ in range(n)]))
            ch = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(_conv_bn(ch, last, 1), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = last
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        x = self.head(self.stages(self.stem(x)))
        features = torch.flatten(self.pool(x), 1)
        return ModelOutput(self.classifier(features), features)


@MODELS.register("ShuffleV2")
def shufflev2(num_classes: int = 100, in_channels: int = 3) -> ShuffleNetV2:
    """CIFAR ShuffleNet V2 1x: widths 116/232/464, blocks 3/7/3, head 1024 (the KD papers' ShuffleV2)."""
    return ShuffleNetV2(num_classes=num_classes, in_channels=in_channels)
