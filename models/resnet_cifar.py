"""CIFAR ResNets (He et al. 2016, section 4.2): 3 stages of basic blocks, 6n+2 layers.

Names and sizes follow the CRD / mdistiller definitions, the field standard for CIFAR-100
distillation: resnet{8,14,20,32,44,56,110} with stage widths 16-16-32-64, and resnet8x4 /
resnet32x4 with 32-64-128-256. Shortcuts are 1x1 conv + BN where the shape changes.
The final fixed 8x8 average pool of the reference code is an adaptive average pool here
(same parameters; also runs on 8x8 or 16x16 inputs).
"""
import torch
from torch import nn

from models.base import MODELS, ModelOutput, init_conv_bn, scaled


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem conv (3x3, widths[0]) then three stages of n basic blocks, n = (depth - 2) / 6."""

    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int = 100,
                 in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        in_planes = widths[0]
        stages = []
        for planes, stride in zip(widths[1:], (1, 2, 2)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride if j == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = in_planes
        self.classifier = nn.Linear(in_planes, num_classes)
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        features = torch.flatten(self.pool(x), 1)
        return ModelOutput(self.classifier(features), features)


def _register(name: str, depth: int, widths: tuple[int, int, int, int]) -> None:
    def factory(num_classes: int = 100, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
        """`width` multiplies every stage width (1.0 = the standard model)."""
        return CifarResNet(depth, tuple(scaled(w, width) for w in widths), num_classes, in_channels)

    factory.__name__ = name
    factory.__doc__ = f"CIFAR {name}: depth {depth}, stage widths {widths}. " + factory.__doc__
    MODELS.register(name)(factory)


for _depth in (8, 14, 20, 32, 44, 56, 110):
    _register(f"resnet{_depth}", _depth, (16, 16, 32, 64))
_register("resnet8x4", 8, (32, 64, 128, 256))
_register("resnet32x4", 32, (32, 64, 128, 256))
