"""ResNet50 with a CIFAR stem (the CRD / mdistiller `resnetv2.py` definition, name `ResNet50`).

ImageNet ResNet-50 stages (bottlenecks [3, 4, 6, 3], widths 64-128-256-512, expansion 4)
behind a 3x3 stride-1 stem with no max pool, so a 32x32 input ends at 4x4; adaptive
average pool, linear 2048 -> classes. Not the ImageNet `resnet50` (see models/imagenet.py).
"""
import torch
from torch import nn

from models.base import MODELS, ModelOutput, init_conv_bn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != out:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + self.shortcut(x))


class CifarBottleneckResNet(nn.Module):
    def __init__(self, num_blocks=(3, 4, 6, 3), num_classes: int = 100, in_channels: int = 3,
                 width: float = 1.0):
        super().__init__()
        base = max(1, int(round(64 * width)))
        self.conv1 = nn.Conv2d(in_channels, base, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        in_planes = base
        stages = []
        for i, n in enumerate(num_blocks):
            planes = base * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck(in_planes, planes, (1 if i == 0 else 2) if j == 0 else 1))
                in_planes = planes * Bottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = in_planes
        self.classifier = nn.Linear(in_planes, num_classes)
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        features = torch.flatten(self.pool(x), 1)
        return ModelOutput(self.classifier(features), features)


@MODELS.register("ResNet50")
def resnet50_cifar(num_classes: int = 100, in_channels: int = 3, width: float = 1.0) -> CifarBottleneckResNet:
    """CIFAR-stem ResNet-50 (the KD papers' `ResNet50` teacher); `width` scales every stage."""
    return CifarBottleneckResNet((3, 4, 6, 3), num_classes, in_channels, width)
