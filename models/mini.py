"""Small models for the offline mini profile (the mini notes; README, "The mini profile").

1-D signals (B, 1, 40) from mnist1d:
- `cnn1d_teacher` (88.8k parameters at 10 classes): conv 64 (k5) - conv 64 (k3) - max pool 2 -
  conv 128 (k3) - max pool 2 - conv 128 (k3), each conv with bias + BatchNorm + ReLU,
  'same' padding, global max pool, linear 128 -> classes.
- `cnn1d_medium` (22.9k): the teacher's layout at half width (32-32-64-64), for sequential
  distillation teacher -> medium -> student.
- `cnn1d_student` (6.5k): conv 32 (k5) - ReLU - max pool 2 - conv 32 (k3) - ReLU - max pool 2,
  no BatchNorm, 'same' padding, flatten (32 x length/4 = 320 at length 40) -> linear.
- `mlp1d` (6.5k at length 40): flatten - linear 128 - ReLU - linear; works on any input
  shape whose values per channel number `length` (64 for 8x8 digits, 784 for 28x28 MNIST).
2-D images, (B, 1, 8, 8) digits or (B, 1, 28, 28) MNIST; adaptive pooling, any size >= 4x4:
- `cnn2d_teacher` (66k): conv 32 - conv 32 - max pool - conv 64 - conv 64 - max pool (3x3,
  BN + ReLU), global average pool, linear 64 -> classes.
- `cnn2d_student` (6.1k): conv 16 - ReLU - max pool - conv 32 - ReLU (3x3, no BN), adaptive
  average pool to 2x2, flatten (128) -> linear.
"""
import torch
from torch import nn

from common import UserError
from models.base import MODELS, ModelOutput


def _conv_bn_relu_1d(in_ch: int, out_ch: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv1d(in_ch, out_ch, kernel, padding=kernel // 2), nn.BatchNorm1d(out_ch), nn.ReLU(inplace=True)]


class CNN1d(nn.Module):
    """conv w0 (k5) - conv w1 (k3) - pool - conv w2 (k3) - pool - conv w3 (k3), BN + ReLU, global max pool."""

    def __init__(self, widths=(64, 64, 128, 128), num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.body = nn.Sequential(
            *_conv_bn_relu_1d(in_channels, w0, 5), *_conv_bn_relu_1d(w0, w1, 3), nn.MaxPool1d(2),
            *_conv_bn_relu_1d(w1, w2, 3), nn.MaxPool1d(2), *_conv_bn_relu_1d(w2, w3, 3))
        self.pool = nn.AdaptiveMaxPool1d(1)
        self.feature_dim = w3
        self.classifier = nn.Linear(w3, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = torch.flatten(self.pool(self.body(x)), 1)
        return ModelOutput(self.classifier(features), features)


class CNN1dStudent(nn.Module):
    """conv w (k5) - ReLU - pool - conv w (k3) - ReLU - pool, no BN, flatten -> linear."""

    def __init__(self, width: int = 32, num_classes: int = 10, in_channels: int = 1, length: int = 40):
        super().__init__()
        self.length = length
        self.body = nn.Sequential(
            nn.Conv1d(in_channels, width, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool1d(2),
            nn.Conv1d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool1d(2))
        self.feature_dim = width * (length // 2 // 2)
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        if x.shape[-1] != self.length:
            raise UserError(f"cnn1d_student was built for length {self.length}, got input {tuple(x.shape)}; "
                             f"build it with length={x.shape[-1]}")
        features = torch.flatten(self.body(x), 1)
        return ModelOutput(self.classifier(features), features)


class MLP(nn.Module):
    """Flatten - linear hidden - ReLU - linear."""

    def __init__(self, in_features: int, hidden: int = 128, num_classes: int = 10):
        super().__init__()
        self.in_features = in_features
        self.hidden = nn.Linear(in_features, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.feature_dim = hidden
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        x = torch.flatten(x, 1)
        if x.shape[1] != self.in_features:
            raise UserError(f"mlp1d was built for {self.in_features} input values per sample, got {x.shape[1]}; "
                             "set length (values per channel) to match the input")
        features = self.relu(self.hidden(x))
        return ModelOutput(self.classifier(features), features)


def _conv_bn_relu_2d(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


class CNN2dTeacher(nn.Module):
    def __init__(self, widths=(32, 64), num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        a, b = widths
        self.body = nn.Sequential(
            *_conv_bn_relu_2d(in_channels, a), *_conv_bn_relu_2d(a, a), nn.MaxPool2d(2),
            *_conv_bn_relu_2d(a, b), *_conv_bn_relu_2d(b, b), nn.MaxPool2d(2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = b
        self.classifier = nn.Linear(b, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = torch.flatten(self.pool(self.body(x)), 1)
        return ModelOutput(self.classifier(features), features)


class CNN2dStudent(nn.Module):
    def __init__(self, widths=(16, 32), num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        a, b = widths
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, a, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(a, b, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(2))
        self.feature_dim = 4 * b
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = torch.flatten(self.body(x), 1)
        return ModelOutput(self.classifier(features), features)


@MODELS.register("cnn1d_teacher")
def cnn1d_teacher(num_classes: int = 10, in_channels: int = 1) -> CNN1d:
    """mnist1d teacher, 88.8k parameters at 10 classes (mini-notes)."""
    return CNN1d((64, 64, 128, 128), num_classes, in_channels)


@MODELS.register("cnn1d_medium")
def cnn1d_medium(num_classes: int = 10, in_channels: int = 1) -> CNN1d:
    """mnist1d middle model (teacher layout, half width), 22.9k parameters at 10 classes."""
    return CNN1d((32, 32, 64, 64), num_classes, in_channels)


@MODELS.register("cnn1d_student")
def cnn1d_student(num_classes: int = 10, in_channels: int = 1, length: int = 40) -> CNN1dStudent:
    """mnist1d student, 6.5k parameters at 10 classes and length 40 (mini-notes); the
    flatten size is 32 x (length // 4)."""
    return CNN1dStudent(32, num_classes, in_channels, length)


@MODELS.register("mlp1d")
def mlp1d(num_classes: int = 10, in_channels: int = 1, length: int = 40, hidden: int = 128) -> MLP:
    """One-hidden-layer MLP on the flattened input (in_channels x length values)."""
    return MLP(in_channels * length, hidden, num_classes)


@MODELS.register("cnn2d_teacher")
def cnn2d_teacher(num_classes: int = 10, in_channels: int = 1) -> CNN2dTeacher:
    """Small 2-D CNN teacher for 8x8 digits / 28x28 MNIST, 66k parameters at 10 classes."""
    return CNN2dTeacher((32, 64), num_classes, in_channels)


@MODELS.register("cnn2d_student")
def cnn2d_student(num_classes: int = 10, in_channels: int = 1) -> CNN2dStudent:
    """Small 2-D CNN student for 8x8 digits / 28x28 MNIST, 6.1k parameters at 10 classes."""
    return CNN2dStudent((16, 32), num_classes, in_channels)
