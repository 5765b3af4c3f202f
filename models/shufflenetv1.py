"""ShuffleNet V1 for CIFAR (Zhang et al. 2018), as in the CRD / mdistiller code (`ShuffleV1`).

Stem 1x1 conv to 24 channels (stride 1); three stages of 4 / 8 / 4 bottlenecks with output
widths 240 / 480 / 960 and 3 groups. A bottleneck: grouped 1x1 conv to width/4 (1 group
when its input has 24 channels), channel shuffle, depthwise 3x3, grouped 1x1 conv. The
first block of a stage has stride 2, an average-pool shortcut and concatenates it, so its
conv branch outputs (stage width - input width) channels. Average pool, linear 960 -> classes.
"""
import torch
import torch.nn.functional as F
from torch import nn

from models.base import MODELS, ModelOutput


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleBottleneck(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, groups: int):
        super().__init__()
        mid = out_ch // 4
        self.first_groups = 1 if in_ch == 24 else groups
        self.conv1 = nn.Conv2d(in_ch, mid, 1, groups=self.first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_ch, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.stride = stride
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, self.first_groups)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = self.shortcut(x)
        out = torch.cat([out, res], 1) if self.stride == 2 else out + res
        return F.relu(out)


class ShuffleNetV1(nn.Module):
    def __init__(self, stage_widths=(240, 480, 960), num_blocks=(4, 8, 4), groups: int = 3,
                 num_classes: int = 100, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        ch = 24
        stages = []
        for width, n in zip(stage_widths, num_blocks):
            blocks = []
            for j in range(n):
                # the first block concatenates its (pooled) input: its branch makes the rest
                blocks.append(ShuffleBottleneck(ch, width - ch if j == 0 else width, 2 if j == 0 else 1, groups))
                ch = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = ch
        self.classifier = nn.Linear(ch, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        x = self.stages(F.relu(self.bn1(self.conv1(x))))
        features = torch.flatten(self.pool(x), 1)
        return ModelOutput(self.classifier(features), features)


@MODELS.register("ShuffleV1")
def shufflev1(num_classes: int = 100, in_channels: int = 3) -> ShuffleNetV1:
    """CIFAR ShuffleNet V1, 3 groups, widths 240/480/960, blocks 4/8/4 (the KD papers' ShuffleV1)."""
    return ShuffleNetV1(num_classes=num_classes, in_channels=in_channels)
