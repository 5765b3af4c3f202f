"""`synthetic`: seeded random class templates plus noise, generated in memory.

For smoke tests (seconds) and for throughput benchmarks on CIFAR-shaped tensors where
no real data is at hand. Not a benchmark of accuracy: classes are separable by design.
- shape (C, L): float32 signals, augmented like mnist1d (circular shift + Gaussian noise);
- shape (C, H, W): uint8 images, augmented like CIFAR (zero-padded crop + flip, 162 views at 32x32).
"""
from __future__ import annotations

import torch

from common import UserError
from data.augment import CropFlip, ShiftNoise
from data.core import DATASETS, DataBundle
from data.splits import ArraySplit


def _make(n: int, templates: torch.Tensor, noise: float, gen: torch.Generator):
    labels = torch.randint(len(templates), (n,), generator=gen)
    x = templates[labels] + noise * torch.randn((n, *templates.shape[1:]), generator=gen)
    return x, labels


@DATASETS.register("synthetic")
def synthetic(root=None, download=False, num_train: int = 512, num_test: int = 256, num_classes: int = 10,
              shape=(3, 32, 32), noise: float = 1.0, seed: int = 0, augment: bool = True) -> DataBundle:
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise UserError(f"synthetic shape must be (C, L) or (C, H, W), got {shape}")
    if num_train < 1 or num_test < 1 or num_classes < 2:
        raise UserError("synthetic needs num_train >= 1, num_test >= 1 and num_classes >= 2")
    gen = torch.Generator().manual_seed(seed)
    templates = torch.randn((num_classes, *shape), generator=gen)
    x_train, y_train = _make(num_train, templates, noise, gen)
    x_test, y_test = _make(num_test, templates, noise, gen)
    if len(shape) == 3:  # images: map to uint8 pixels like a real image data set
        to_pixels = lambda x: (x * 40 + 128).clamp(0, 255).to(torch.uint8)  # noqa: E731
        x_train, x_test = to_pixels(x_train), to_pixels(x_test)
        aug = CropFlip(pad=4 if shape[1] >= 32 else 1, size=shape[1]) if augment else None
        stats = dict(mean=[0.5] * shape[0], std=[0.25] * shape[0])
    else:
        aug = ShiftNoise(max_shift=2, sigma=0.1) if augment else None
        stats = {}
    return DataBundle(
        name="synthetic", train=ArraySplit(x_train, y_train, aug, **stats), test=ArraySplit(x_test, y_test, None, **stats),
        num_classes=num_classes, in_channels=shape[0], input_shape=shape,
        info={"source": "generated in memory (data/synthetic.py)", "num_train": num_train, "num_test": num_test,
              "seed": seed})
