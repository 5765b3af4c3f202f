"""Batched data augmentations with enumerable views.

An `Augment` works on a whole batch at once (no per-sample Python loop) and splits its
randomness in two steps so the engine can reproduce exactly what the model saw:

- `sample_views(n, generator)` draws one view id per sample (int64, on the generator's
  device). A view id fully describes the geometric part of the augmentation.
- `apply(x, views, generator)` applies those views to the raw batch (uint8 pixels or float
  signals, before normalisation). Non-enumerable parts (Gaussian noise) draw from
  `generator` here.

`num_views` is the number of distinct view ids when the augmentation is a deterministic
function of (sample, view id), else None (then `view()` cannot rebuild an input).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from common import UserError


def _device_of(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


class Augment:
    """Base class: the interface `ArraySplit` relies on."""

    num_views: int | None = None

    def sample_views(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def apply(self, x: torch.Tensor, views: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def to(self, device) -> "Augment":
        """Augments hold no tensors: every index tensor is built on the batch's device."""
        return self


class CropFlip(Augment):
    """Random crop with zero padding plus horizontal flip, as torchvision's
    `RandomCrop(size, padding=pad)` followed by `RandomHorizontalFlip()`, on a batch.

    Inputs are (B, C, size, size). The crop's top-left corner (dy, dx) in the padded
    image takes 2 * pad + 1 values per axis (torchvision's `top`, `left`), so with
    flip there are (2 * pad + 1)^2 * 2 views (162 for CIFAR's pad 4). View id:
    `view = (dy * (2 * pad + 1) + dx) * 2 + flip` (without flip: `dy * (2 * pad + 1) + dx`).
    Padding is zero in pixel space (before normalisation), as torchvision pads a PIL
    image or uint8 tensor with fill 0 before `ToTensor` and `Normalize`.
    """

    def __init__(self, pad: int = 4, size: int = 32, flip: bool = True):
        if pad < 0 or size < 1:
            raise UserError(f"CropFlip needs pad >= 0 and size >= 1, got pad={pad}, size={size}")
        self.pad, self.size, self.flip = int(pad), int(size), bool(flip)
        self.positions = 2 * self.pad + 1          # crop offsets per axis
        self.num_views = self.positions ** 2 * (2 if self.flip else 1)

    def __repr__(self) -> str:
        return f"CropFlip(pad={self.pad}, size={self.size}, flip={self.flip})"

    def decode(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """View ids -> (dy, dx, flip) int64 tensors."""
        views = views.long()
        if self.flip:
            flip, pos = views % 2, views // 2
        else:
            flip, pos = torch.zeros_like(views), views
        return pos // self.positions, pos % self.positions, flip

    def encode(self, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        pos = dy.long() * self.positions + dx.long()
        return pos * 2 + flip.long() if self.flip else pos

    def sample_views(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randint(0, self.num_views, (n,), generator=generator, device=_device_of(generator))

    def apply(self, x: torch.Tensor, views: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != (self.size, self.size):
            raise UserError(f"{self!r} expects (B, C, {self.size}, {self.size}) inputs, got {tuple(x.shape)}")
        views = views.to(x.device)
        if views.shape != (x.shape[0],) or (views.numel() and (views.min() < 0 or views.max() >= self.num_views)):
            raise UserError(f"{self!r}: need one view id in [0, {self.num_views}) per sample")
        b, c, s, p = x.shape[0], x.shape[1], self.size, self.pad
        dy, dx, flip = self.decode(views)
        padded = F.pad(x, (p, p, p, p)) if p else x              # (B, C, s + 2p, s + 2p), zeros
        ar = torch.arange(s, device=x.device)
        rows = dy[:, None] + ar                                    # (B, s) padded-row of each output row
        cols = dx[:, None] + ar                                    # (B, s) padded-col of each output col
        cols = torch.where(flip[:, None].bool(), cols.flip(1), cols)
        width = padded.shape[-1]
        flat = (rows[:, :, None] * width + cols[:, None, :]).reshape(b, 1, s * s)   # one gather per pixel
        out = padded.reshape(b, c, -1).gather(2, flat.expand(b, c, s * s))
        return out.reshape(b, c, s, s)


class ShiftNoise(Augment):
    """1-D signals (B, C, L): circular shift by an integer in [-max_shift, max_shift]
    (`torch.roll` semantics: a positive shift moves values to higher indices), then
    additive Gaussian noise of standard deviation `sigma` (the mini profile's mnist1d
    augmentation). View id: `shift + max_shift`. With noise the augmentation is not
    enumerable (`num_views` None); with `noise=False` or `sigma == 0` it has
    2 * max_shift + 1 views.
    """

    def __init__(self, max_shift: int = 4, sigma: float = 0.1, noise: bool = True):
        if max_shift < 0 or sigma < 0:
            raise UserError(f"ShiftNoise needs max_shift >= 0 and sigma >= 0, got {max_shift}, {sigma}")
        self.max_shift, self.sigma = int(max_shift), float(sigma)
        self.noise = bool(noise) and self.sigma > 0
        self.shifts = 2 * self.max_shift + 1
        self.num_views = None if self.noise else self.shifts

    def __repr__(self) -> str:
        return f"ShiftNoise(max_shift={self.max_shift}, sigma={self.sigma}, noise={self.noise})"

    def sample_views(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randint(0, self.shifts, (n,), generator=generator, device=_device_of(generator))

    def apply(self, x: torch.Tensor, views: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.dim() != 3:
            raise UserError(f"{self!r} expects (B, C, L) signals, got {tuple(x.shape)}")
        views = views.to(x.device).long()
        if views.shape != (x.shape[0],) or (views.numel() and (views.min() < 0 or views.max() >= self.shifts)):
            raise UserError(f"{self!r}: need one view id in [0, {self.shifts}) per sample")
        b, c, length = x.shape
        shift = views - self.max_shift
        src = (torch.arange(length, device=x.device)[None, :] - shift[:, None]) % length   # out[t] = x[t - s]
        out = x.gather(2, src[:, None, :].expand(b, c, length))
        if self.noise:
            noise = torch.randn(out.shape, generator=generator, device=_device_of(generator), dtype=torch.float32)
            out = out.float() + self.sigma * noise.to(x.device)
        return out
