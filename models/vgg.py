"""CIFAR VGGs with BatchNorm (Simonyan & Zisserman 2015, adapted in the CRD / mdistiller code).

Five conv blocks (3x3 conv with bias, BN, ReLU), max pool 2x2 after the first three; at
32x32 the last two blocks run at 4x4 (the reference pools between them only for 64x64
inputs: here for inputs of height >= 64), then global average pool and one linear layer
512 -> classes. vgg8 has one conv per block.
"""
import torch
from torch import nn

from models.base import MODELS, ModelOutput, init_conv_bn

CONFIGS = {  # output channels of the convs, per block
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


def _block(in_ch: int, channels: tuple[int, ...], batch_norm: bool) -> nn.Sequential:
    layers = []
    for out_ch in channels:
        layers.append(nn.Conv2d(in_ch, out_ch, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.ReLU(inplace=True))
        in_ch = out_ch
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, cfg, num_classes: int = 100, in_channels: int = 3, batch_norm: bool = True):
        super().__init__()
        blocks = []
        for channels in cfg:
            blocks.append(_block(in_channels, channels, batch_norm))
            in_channels = channels[-1]
        self.blocks = nn.ModuleList(blocks)
        self.maxpool = nn.MaxPool2d(2, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = in_channels
        self.classifier = nn.Linear(in_channels, num_classes)
        init_conv_bn(self)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        large = x.shape[-2] >= 64
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < 3 or (i == 3 and large):
                x = self.maxpool(x)
        features = torch.flatten(self.pool(x), 1)
        return ModelOutput(self.classifier(features), features)


def _register(name: str) -> None:
    def factory(num_classes: int = 100, in_channels: int = 3, batch_norm: bool = True) -> VGG:
        """`batch_norm=False` drops the BatchNorm layers (the KD papers use them)."""
        return VGG(CONFIGS[name], num_classes, in_channels, batch_norm)

    factory.__name__ = name
    factory.__doc__ = f"CIFAR {name} with BatchNorm. " + factory.__doc__
    MODELS.register(name)(factory)


for _name in CONFIGS:
    _register(_name)
