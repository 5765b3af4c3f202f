"""Small 1-D models for the many-class mini setting: `mnist1d_hier`, (B, 1, 40) signals,
100 classes in 20 coarse x 5 fine (data/hier.py). Every model pools globally before its
classifier, so the penultimate features are a pooled vector (B, feature_dim), as in the
CIFAR zoo, and `feature_dim` does not depend on the input length (any length >= 4 works).

Two families, so that same-family and cross-family pairs exist:
- A, `Plain1d`, a plain CNN: conv (bias-free) + BatchNorm + ReLU, max pools of 2, global max
  pool, linear. Layouts: L4 = conv w (k5) - conv w (k3) - pool - conv 2w (k3) - pool -
  conv 2w (k3) (mini.py's cnn1d_teacher layout) and L2 = conv w (k5) - pool - conv 2w (k3) - pool.
- B, `Res1d`, a residual net: stem conv (k5, BN, ReLU), CIFAR-ResNet basic blocks (two k3 convs
  with BN; 1x1 conv + BN shortcut when the stride or width changes), global average pool, linear.

| model | params (100 classes) | features | layout | role |
|---|---|---|---|---|
| `cnn1d_t100` | 100,004 | 128 | A, L4 w = 64 (64-64-128-128) | teacher |
| `cnn1d_m100` | 17,404 | 48 | A, L4 w = 24 (24-24-48-48) | middle; the deep and the wide end of A's student pairs |
| `cnn1d_s100_shallow` | 12,996 | 64 | A, L2 w = 32 (32-64) | student: shallow (2 convs, not 4) |
| `cnn1d_s100_thin` | 5,728 | 24 | A, L4 w = 12 (12-12-24-24) | student: thin (the middle's layout, half width) |
| `cnn1d_s100_wide` | 38,180 | 128 | A, L2 w = 64 (64-128) | probe: the shallow student at double width |
| `res1d_s100` | 10,612 | 32 | B, stem 16 - block 16 /2 - block 32 /2 | student, the other family |

Widths were revised after the first validation search (reproduce/many_class.py): with 16-32 and
8-8-16-16 students (32 and 16 pooled features) the CE student did not overfit (train = validation
accuracy), KD did not beat CE and logit matching fell 10-14 points below it; a 64-feature shallow
student (the validation probe: CE 71.1, KD 74.5) and a 24-48 middle (75.9, teacher 79.1) give the
setting a capacity gap on both sides. Pairs (`PAIRS`): deep->shallow `cnn1d_m100` ->
`cnn1d_s100_shallow` (4 convs -> 2), wide->thin `cnn1d_m100` -> `cnn1d_s100_thin` (same layout,
half width), teacher -> middle (same layout, 3/8 width), cross-family `cnn1d_t100` -> `res1d_s100`.
Sequential distillation (`SEQUENTIAL`): teacher -> middle -> shallow. Initialisation: torch's
defaults. Cost per epoch: reproduce/costs.py (measured in the runs).

Earlier measurements (the first widths, 2026-12-01, load 5-6, CPU s per epoch of 8000 signals):
teacher 2.04 train / 0.32 forward; a 5k student 0.27 / 0.04; res1d_s100 0.44 / 0.08.

The first accuracy probe (widths of the first version, one seed, test set, a plain loop outside
the engine) found the teacher at 76.7 % (lr 1e-2, 40 epochs) with 14.4x more probability per
sibling class than per other class at tau 1; the recipes and the widths above come from the
validation search since (results/many_class/mini100/search_*.md).
"""
from __future__ import annotations

import torch
from torch import nn

from models.base import MODELS, ModelOutput

POOL = "P"     # a max pool of 2 in a Plain1d layout


class Plain1d(nn.Module):
    """Family A, a plain CNN: a layout of convolutions `(width, kernel)` ('same' padding,
    optional BatchNorm, ReLU) and max pools of 2 (`POOL`), then global max pool, linear."""

    def __init__(self, layout, num_classes: int = 100, in_channels: int = 1, bn: bool = True):
        super().__init__()
        layers, c = [], in_channels
        for item in layout:
            if item == POOL:
                layers.append(nn.MaxPool1d(2))
                continue
            width, kernel = item
            layers.append(nn.Conv1d(c, width, kernel, padding=kernel // 2, bias=not bn))
            if bn:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU(inplace=True))
            c = width
        self.layout = tuple(layout)
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool1d(1)
        self.feature_dim = c
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = torch.flatten(self.pool(self.body(x)), 1)
        return ModelOutput(self.classifier(features), features)


class BasicBlock1d(nn.Module):
    """Two k3 convolutions with BatchNorm, ReLU, identity shortcut (1x1 conv + BN when the
    stride or width changes): the CIFAR ResNet basic block in 1-D."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv1d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(out_ch)
        self.conv2 = nn.Conv1d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv1d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm1d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class Res1d(nn.Module):
    """Family B, a residual 1-D net: stem conv (k5, BN, ReLU), stages of basic blocks
    `(width, blocks, stride)`, global average pool, linear."""

    def __init__(self, stem: int, stages, num_classes: int = 100, in_channels: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(in_channels, stem, 5, padding=2, bias=False), nn.BatchNorm1d(stem),
                                  nn.ReLU(inplace=True))
        blocks, c = [], stem
        for width, n, stride in stages:
            for i in range(n):
                blocks.append(BasicBlock1d(c, width, stride if i == 0 else 1))
                c = width
        self.stages = tuple(stages)
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.feature_dim = c
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = torch.flatten(self.pool(self.blocks(self.stem(x))), 1)
        return ModelOutput(self.classifier(features), features)


# --- the registered models --------------------------------------------------------------
def _layout4(w: int) -> tuple:
    """The teacher's layout (that of mini.py's cnn1d_teacher): conv w (k5) - conv w (k3) - pool -
    conv 2w (k3) - pool - conv 2w (k3)."""
    return ((w, 5), (w, 3), POOL, (2 * w, 3), POOL, (2 * w, 3))


def _layout2(w: int) -> tuple:
    """Two convolutions: conv w (k5) - pool - conv 2w (k3) - pool."""
    return ((w, 5), POOL, (2 * w, 3), POOL)


@MODELS.register("cnn1d_t100")
def cnn1d_t100(num_classes: int = 100, in_channels: int = 1) -> Plain1d:
    """mnist1d_hier teacher: 4 convs, widths 64-64-128-128, BN, global max pool (99.6k at 100 classes)."""
    return Plain1d(_layout4(64), num_classes, in_channels)


@MODELS.register("cnn1d_m100")
def cnn1d_m100(num_classes: int = 100, in_channels: int = 1) -> Plain1d:
    """mnist1d_hier middle model: the teacher's layout at 3/8 width, 24-24-48-48."""
    return Plain1d(_layout4(24), num_classes, in_channels)


@MODELS.register("cnn1d_s100_shallow")
def cnn1d_s100_shallow(num_classes: int = 100, in_channels: int = 1) -> Plain1d:
    """mnist1d_hier student, family A, shallow: two convs, 32-64 (64 pooled features)."""
    return Plain1d(_layout2(32), num_classes, in_channels)


@MODELS.register("cnn1d_s100_wide")
def cnn1d_s100_wide(num_classes: int = 100, in_channels: int = 1) -> Plain1d:
    """mnist1d_hier width probe: the shallow student at double width, 64-128 (128 pooled features),
    to see how logit matching depends on the penultimate width (many_class search)."""
    return Plain1d(_layout2(64), num_classes, in_channels)


@MODELS.register("cnn1d_s100_thin")
def cnn1d_s100_thin(num_classes: int = 100, in_channels: int = 1) -> Plain1d:
    """mnist1d_hier student, family A, thin: the middle model's layout at half width, 12-12-24-24."""
    return Plain1d(_layout4(12), num_classes, in_channels)


@MODELS.register("res1d_s100")
def res1d_s100(num_classes: int = 100, in_channels: int = 1) -> Res1d:
    """mnist1d_hier student, family B: stem 16 (k5) - block 16 (stride 2) - block 32 (stride 2),
    global average pool (10.6k)."""
    return Res1d(16, ((16, 1, 2), (32, 1, 2)), num_classes, in_channels)


# teacher -> student pairs (model names), by the relation the KD papers' tables use
PAIRS = {
    "deep->shallow": ("cnn1d_m100", "cnn1d_s100_shallow"),    # same widths, 4 convs -> 2
    "wide->thin": ("cnn1d_m100", "cnn1d_s100_thin"),          # same layout, half width
    "teacher->middle": ("cnn1d_t100", "cnn1d_m100"),          # same layout, quarter width
    "cross-family": ("cnn1d_t100", "res1d_s100"),             # plain CNN -> residual net
}
SEQUENTIAL = ("cnn1d_t100", "cnn1d_m100", "cnn1d_s100_shallow")   # teacher -> middle -> student
