"""Synthetic label noise, made once per (labels, kind, rate, seed) and shared.

Paper 1 studies distillation under noisy labels but published no noise code: the kinds
below are our assumption (declared in the experiment configs), in the usual form:

- `symmetric`: each label is flipped with probability `rate` to a class drawn uniformly
  among the C - 1 OTHER classes (so the actual flip fraction is `rate`).
- `asymmetric`: each label is flipped with probability `rate` to (c + 1) mod C (class-pair
  flips).
- `none`: labels unchanged (rate must be 0).

The draws come from a private generator seeded with `seed`, independent of training.
`load_or_make_noisy_labels` saves the corruption next to the run so a teacher and all its
students see the same noisy labels.
"""
from __future__ import annotations

import hashlib
import math
import numbers
from pathlib import Path

import torch

from common import UserError
from common.files import atomic_file

KINDS = ("none", "symmetric", "asymmetric")
_FORMAT = 1   # version of the saved file layout


def _check(kind: str, rate: float, num_classes: int) -> None:
    if kind not in KINDS:
        raise UserError(f"unknown label noise kind '{kind}'; known: {', '.join(KINDS)}")
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or math.isnan(rate) or not 0.0 <= rate < 1.0:
        raise UserError(f"label noise rate must be a number in [0, 1), got {rate!r}")
    if kind == "none" and rate != 0:
        raise UserError(f"label noise kind 'none' takes rate 0, got {rate}")
    if kind != "none" and num_classes < 2:
        raise UserError(f"label noise needs at least 2 classes, got {num_classes}")


def _clean(labels, num_classes: int) -> torch.Tensor:
    labels = torch.as_tensor(labels).detach().cpu()
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.dim() != 1:
        raise UserError(f"labels must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")
    labels = labels.long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserError(f"labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]")
    return labels


def noisy_labels(labels, num_classes: int, kind: str, rate: float, seed: int) -> torch.Tensor:
    """Corrupted copy of `labels` (int64, CPU). Deterministic in (labels, kind, rate, seed)."""
    _check(kind, rate, num_classes)
    clean = _clean(labels, num_classes)
    if kind == "none" or rate == 0:
        return clean.clone()
    g = torch.Generator().manual_seed(int(seed))
    flip = torch.rand(clean.shape, generator=g, dtype=torch.float64) < rate
    if kind == "symmetric":
        # c + k mod C with k uniform in 1..C-1 is uniform over the other classes
        offset = torch.randint(1, num_classes, clean.shape, generator=g)
        target = (clean + offset) % num_classes
    else:
        target = (clean + 1) % num_classes
    return torch.where(flip, target, clean)


def labels_checksum(labels) -> str:
    """SHA-256 of the labels as little-endian int64: identifies the clean label set."""
    arr = torch.as_tensor(labels).detach().cpu().long().numpy().astype("<i8")
    return hashlib.sha256(arr.tobytes()).hexdigest()


def load_or_make_noisy_labels(path, labels, num_classes: int, kind: str, rate: float, seed: int) -> torch.Tensor:
    """Load the noisy labels saved at `path`, or make and save them (atomically).

    A saved file is reused only if it was made from the same clean labels (checksum),
    number of classes, kind, rate and seed; any difference raises UserError instead of
    silently training on another corruption.
    """
    _check(kind, rate, num_classes)
    clean = _clean(labels, num_classes)
    want = {"format": _FORMAT, "clean_sha256": labels_checksum(clean), "num_classes": int(num_classes),
            "kind": kind, "rate": float(rate), "seed": int(seed), "n": int(clean.numel())}
    path = Path(path)
    if path.exists():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            meta, noisy = saved["meta"], saved["labels"]
        except Exception as e:  # unreadable or foreign file
            raise UserError(f"cannot read noisy labels from {path}: {e}; delete it to regenerate") from e
        diff = [f"{k}: saved {meta.get(k)!r}, wanted {v!r}" for k, v in want.items() if meta.get(k) != v]
        if not diff and (noisy.dtype != torch.long or noisy.shape != clean.shape):
            diff = [f"labels: saved shape {tuple(noisy.shape)} {noisy.dtype}"]
        if diff:
            raise UserError(f"noisy labels at {path} do not match this run ({'; '.join(diff)}); "
                            "use another path or delete the file")
        return noisy
    noisy = noisy_labels(clean, num_classes, kind, rate, seed)
    with atomic_file(path) as f:
        torch.save({"meta": want, "labels": noisy}, f)
    return noisy
