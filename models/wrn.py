"""Wide ResNets (Zagoruyko & Komodakis 2016) for CIFAR: WRN-d-k, (d - 4) / 6 pre-activation
blocks per stage, stage widths 16k-32k-64k after a 16-channel stem.

Follows the CRD / mdistiller `wrn.py` (the field standard; dropout 0): BN-ReLU before each
conv, 1x1 conv shortcut where the width changes, a final BN-ReLU, average pool, linear.
Paper 1 (WRN-28-4 -> WRN-16-2) uses the same sizes. The fixed 8x8 pool of the reference is
an adaptive average pool here (same parameters, any input size).
"""
import torch
from torch import nn

from models.base import MODELS, ModelOutput, init_conv_bn, scaled


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.equal_in_out = in_planes == planes and stride == 1
        self.shortcut = None if self.equal_in_out else nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        out = self.relu(self.bn2(self.conv1(pre)))
        out = self.conv2(self.dropout(out))
        # The identity path carries x itself; a projection shortcut sees the pre-activated x.
        return out + (x if self.equal_in_out else self.shortcut(pre))


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int = 100, in_channels: int = 3,
                 width: float = 1.0, drop_rate: float = 0.0):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [scaled(c, width) for c in (16, 16 * widen, 32 * widen, 64 * widen)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        in_planes = widths[0]
        stages = []
        for planes, stride in zip(widths[1:], (1, 2, 2)):
            blocks = []
            for j in range(n):
                blocks.append(PreActBlock(in_planes, planes, stride if j == 0 else 1, drop_rate))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = stages
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = in_planes
        self.classifier = nn.Linear(in_planes, num_classes)
        init_conv_bn(self)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = self.relu(self.bn(x))
        features = torch.flatten(self.pool(x), 1)
        return ModelOutput(self.classifier(features), features)


def _register(depth: int, widen: int) -> None:
    name = f"wrn_{depth}_{widen}"

    def factory(num_classes: int = 100, in_channels: int = 3, width: float = 1.0,
                drop_rate: float = 0.0) -> WideResNet:
        """`width` multiplies every channel count (1.0 = the standard model); `drop_rate` is the
        dropout between the two convs of a block (0 in the standard KD recipes)."""
        return WideResNet(depth, widen, num_classes, in_channels, width, drop_rate)

    factory.__name__ = name
    factory.__doc__ = f"WRN-{depth}-{widen}. " + factory.__doc__
    MODELS.register(name)(factory)


for _depth, _widen in ((16, 1), (16, 2), (16, 4), (28, 2), (28, 4), (40, 1), (40, 2)):
    _register(_depth, _widen)
