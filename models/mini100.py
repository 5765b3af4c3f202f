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
| `cnn1d_m100` | 8,948 | 32 | A, L4 w = 16 (16-16-32-32) | middle; the deep and the wide end of A's student pairs |
| `cnn1d_s100_shallow` | 5,012 | 32 | A, L2 w = 16 (16-32) | student: shallow (the middle's widths, 2 convs not 4) |
| `cnn1d_s100_thin` | 3,180 | 16 | A, L4 w = 8 (8-8-16-16) | student: thin (the middle's layout, half width) |
| `res1d_s100` | 10,612 | 32 | B, stem 16 - block 16 /2 - block 32 /2 | student, the other family |

Pairs (`PAIRS`): deep->shallow `cnn1d_m100` -> `cnn1d_s100_shallow` (same widths, 4 -> 2 convs),
wide->thin `cnn1d_m100` -> `cnn1d_s100_thin` (same layout, half width), teacher -> middle (same
layout, quarter width), cross-family `cnn1d_t100` -> `res1d_s100`; the teacher -> any student is
deeper and wider at once. Sequential distillation (`SEQUENTIAL`): teacher -> middle -> shallow.
Initialisation: torch's defaults (as probed below).

Cost, one torch thread, 8000 signals of length 40 per epoch, batch 128 (63 steps), random
inputs, forward + backward + Adam step; "forward" = eval-mode forward only (a teacher's cost
per student epoch). Measured 2026-12-01 on the 2-core AMD EPYC
machine, torch 2.14.1, with other agents' jobs keeping the load average at 5-6: wall times
are 1.5-2x the process CPU times; the CPU times (median of 5) approximate an idle core
(an earlier, lighter-loaded wall-clock pass, load 2.5: teacher 1.48, res1d 0.28-0.30 s):

| model | train s/epoch, CPU (wall) | forward-only s/epoch, CPU (wall) |
|---|---|---|
| `cnn1d_t100` | 2.04 (4.0) | 0.32 (0.48) |
| `cnn1d_m100` | 0.41 (0.82) | 0.07 (0.14) |
| `cnn1d_s100_shallow` | 0.27 (0.54) | 0.04 (0.06) |
| `cnn1d_s100_thin` | 0.27 (0.50) | 0.04 (0.08) |
| `res1d_s100` | 0.44 (0.82) | 0.08 (0.16) |

A KD student epoch costs its own train time plus the teacher's forward (0.3 s): about
0.6-0.75 s of one core, so 3 minutes allow about 240 epochs.

Accuracy probe (not a recipe search: one seed, test top-1 % on the 6000 test signals, sigma 0.4,
the whole 8000 training signals, shift +-4 + noise 0.1, Adam, cosine per step to 0, batch 128,
CE, a plain loop outside the engine, 2026-12-01, the same loaded machine):

| model | lr | epochs | top-1 (at 30 / 45 epochs) | note |
|---|---|---|---|---|
| `cnn1d_t100` | 1e-2 | 40 | 76.70 (75.92 at 30) | tau 1: true class 0.702, 4 siblings 0.112, 95 others 0.185: 14.4x per sibling |
| `cnn1d_m100` | 1e-2 | 60 | 73.25 (68.10 / 72.00) | 3.5 below the teacher |
| `res1d_s100` | 3e-3 | 60 | 66.03 (61.45 / 65.08) | |
| `cnn1d_s100_shallow` | 1e-2 | 60 | 62.50 (58.32 / 61.60) | KD tau 4, 0.9 KD + 0.1 CE: 64.97 |
| `cnn1d_s100_thin` | 1e-2 | 60 | 59.87 (55.57 / 59.10) | |
| 4 convs 32-32-32-32 (L4 kernels and pools), 12.9k, not registered | 3e-3 | 60 | 74.08 | too close to the teacher for a student |
| 2 convs 32-32 (L2 kernels and pools), 6.7k, not registered | 3e-3 | 60 | 66.32 | |
| 4 convs 32-32-32-32 without BatchNorm, not registered | 3e-3 | 60 | 64.45 | BN: +9.6 points |

Pooling globally makes these students much stronger than mini.py's flatten student (49.7 %
CE at 35.4k parameters, mini-notes): a student of 12.9k parameters came within 2.6 points of
the teacher, so the students are kept at 3-11k. Every run was still rising at its last
epochs: the recipes are still to be searched (on a validation split).
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
    """mnist1d_hier middle model: the teacher's layout at quarter width, 16-16-32-32 (8.9k)."""
    return Plain1d(_layout4(16), num_classes, in_channels)


@MODELS.register("cnn1d_s100_shallow")
def cnn1d_s100_shallow(num_classes: int = 100, in_channels: int = 1) -> Plain1d:
    """mnist1d_hier student, family A, shallow: the middle model's first and third convs, 16-32 (5.0k)."""
    return Plain1d(_layout2(16), num_classes, in_channels)


@MODELS.register("cnn1d_s100_thin")
def cnn1d_s100_thin(num_classes: int = 100, in_channels: int = 1) -> Plain1d:
    """mnist1d_hier student, family A, thin: the middle model's layout at half width, 8-8-16-16 (3.2k)."""
    return Plain1d(_layout4(8), num_classes, in_channels)


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
