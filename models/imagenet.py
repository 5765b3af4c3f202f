"""ImageNet ResNets from torchvision (He et al. 2016), returning `ModelOutput`.

`resnet18`, `resnet34`, `resnet50`, `resnet152` are torchvision's own `ResNet` class with a
forward that also returns the pooled pre-fc features; built with random weights (nothing is
ever downloaded). Submodule names are torchvision's (`conv1`, `layer1`..`layer4`, `fc`), so
a torchvision state dict saved on disk loads unchanged; `model.classifier` is `model.fc`.
Any input of at least 32x32 works (the KD recipes use 224x224). torchvision is imported when a
model is built, not at import: it loads every torchvision model (seconds per process).
"""
from functools import lru_cache

import torch
from torch import nn

from models.base import MODELS, ModelOutput


@lru_cache(maxsize=None)
def torchvision_resnet():
    """(the ResNet subclass, {block name: block class}), defined on first use."""
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    class TorchvisionResNet(ResNet):
        def __init__(self, block, layers, num_classes: int = 1000, in_channels: int = 3):
            super().__init__(block, layers, num_classes=num_classes)
            if in_channels != 3:
                self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
                nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
            self.feature_dim = self.fc.in_features

        @property
        def classifier(self) -> nn.Linear:
            return self.fc

        def forward(self, x: torch.Tensor) -> ModelOutput:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            features = torch.flatten(self.avgpool(x), 1)
            return ModelOutput(self.fc(features), features)

    return TorchvisionResNet, {"BasicBlock": BasicBlock, "Bottleneck": Bottleneck}


_SPECS = {
    "resnet18": ("BasicBlock", (2, 2, 2, 2)),
    "resnet34": ("BasicBlock", (3, 4, 6, 3)),
    "resnet50": ("Bottleneck", (3, 4, 6, 3)),
    "resnet101": ("Bottleneck", (3, 4, 23, 3)),
    "resnet152": ("Bottleneck", (3, 8, 36, 3)),
}


def _register(name: str) -> None:
    block, layers = _SPECS[name]

    def factory(num_classes: int = 100, in_channels: int = 3):
        cls, blocks = torchvision_resnet()
        return cls(blocks[block], list(layers), num_classes, in_channels)

    factory.__name__ = name
    factory.__doc__ = (f"ImageNet {name} (torchvision definition, random init); "
                       "pass num_classes=1000 for ImageNet-1k.")
    MODELS.register(name)(factory)


for _name in _SPECS:
    _register(_name)
