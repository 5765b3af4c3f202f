"""Model zoo: every model returns `ModelOutput(logits, features)`; build one by name.

    model = build_model("resnet32x4", num_classes=100)
    out = model(x)                      # out.logits (B, C), out.features (B, model.feature_dim)
    model.classifier(out.features)      # == out.logits

Families: CIFAR ResNets (resnet_cifar), WRNs (wrn), VGGs (vgg), MobileNetV2 (mobilenetv2),
ShuffleV1/V2 (shufflenetv1/v2), CIFAR-stem ResNet50 (resnet50_cifar), torchvision ImageNet
ResNets (imagenet), MobileNetV1 (mobilenetv1), the mini profile's small models (mini) and the
100-class mini models for mnist1d_hier (mini100).
Note the case: `ResNet50` is the CIFAR-stem model of the KD papers, `resnet50` the ImageNet one.
"""
from torch import nn

from models.base import MODELS, ModelOutput
from models import (imagenet, mini, mini100, mobilenetv1, mobilenetv2, resnet50_cifar, resnet_cifar,  # noqa: F401 (register)
                    shufflenetv1, shufflenetv2, vgg, wrn)

__all__ = ["MODELS", "ModelOutput", "build_model", "list_models"]


def build_model(name: str, num_classes: int = 100, in_channels: int = 3, **kw) -> nn.Module:
    """Build a registered model; unknown names and unknown keywords raise UserError."""
    return MODELS.build(name, num_classes=num_classes, in_channels=in_channels, **kw)


def list_models() -> list[str]:
    return MODELS.names()
