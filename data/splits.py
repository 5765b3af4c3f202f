"""Splits: what the engine iterates over. Each yields `Batch(x, y, index, views)`.

- `ArraySplit`: the whole split in memory (uint8 pixels (N, C, H, W) or float signals
  (N, C, L)); augmentation, conversion and normalisation are batched tensor ops, on
  whatever device the split was moved to with `to(device)`.
- `FolderSplit`: an ImageFolder tree (TinyImageNet, ImageNet) decoded by a DataLoader.

Randomness comes only from the `generator` handed to `batches` (a torch.Generator, CPU
is fine for a CUDA split: indices and views are drawn on the generator's device, then
moved). The same generator state gives identical batches; `generator=None` uses torch's
global RNG (fine for unshuffled, unaugmented evaluation). Every tensor of a Batch (x, y,
index, views) lives on the split's device.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from common import UserError
from data.augment import Augment


class Batch(NamedTuple):
    x: torch.Tensor                 # (B, ...) float32, normalised: the model input
    y: torch.Tensor                 # (B,) int64 labels (noisy ones after with_labels)
    index: torch.Tensor             # (B,) int64 sample indices into the split
    views: torch.Tensor | None      # (B,) int64 view ids, or None when not enumerable


def _check_labels(labels, n: int) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise UserError(f"labels must be integers, got {labels.dtype}")
    labels = labels.long()
    if labels.shape != (n,):
        raise UserError(f"need {n} labels, got shape {tuple(labels.shape)}")
    return labels


def _draw_order(n: int, shuffle: bool, generator: torch.Generator | None) -> torch.Tensor:
    if not shuffle:
        return torch.arange(n)
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randperm(n, generator=generator, device=device).cpu()


def shard_slice(n: int, shard: tuple[int, int] | None) -> slice:
    """Rows of a global batch of `n` that rank `shard[0]` of `shard[1]` takes: a contiguous,
    as-even-as-possible slice (n // world rows each when world divides n), in rank order, so
    the ranks' slices put side by side are the global batch."""
    if shard is None:
        return slice(0, n)
    rank, world = shard
    if not 0 <= rank < world:
        raise UserError(f"shard rank {rank} is not in [0, {world})")
    return slice(rank * n // world, (rank + 1) * n // world)


def _chunks(order: torch.Tensor, batch_size: int, drop_last: bool) -> Iterator[torch.Tensor]:
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    n = len(order)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


KEEP = object()   # `ArraySplit.subset(augment=KEEP)`: keep the split's own augmentation


class ArraySplit:
    """A split held in memory as tensors.

    x: uint8 pixels (N, C, H, W) (converted with /255 like torchvision's ToTensor) or
    float signals/images (used as they are); y: (N,) integer labels. `augment` (train
    only) works on raw values before conversion; `mean`/`std` are per-channel, in the
    converted units (e.g. CIFAR's (0.5071, ...) for pixels in [0, 1]); None = no
    normalisation. Without augment every sample has the single view 0.
    """

    def __init__(self, x: torch.Tensor, y, augment: Augment | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        x = torch.as_tensor(x)
        if x.dtype != torch.uint8:
            if not x.dtype.is_floating_point:
                raise UserError(f"ArraySplit x must be uint8 or floating point, got {x.dtype}")
            x = x.float()
        if x.dim() not in (3, 4):
            raise UserError(f"ArraySplit x must be (N, C, L) or (N, C, H, W), got {tuple(x.shape)}")
        self.x = x
        self.y = _check_labels(y, x.shape[0]).to(x.device)
        self.augment = augment
        if (mean is None) != (std is None):
            raise UserError("give both mean and std, or neither")
        self.mean_values = None if mean is None else tuple(float(m) for m in mean)
        self.std_values = None if std is None else tuple(float(s) for s in std)
        if self.mean_values is not None:
            c = x.shape[1]
            if len(self.mean_values) != c or len(self.std_values) != c:
                raise UserError(f"mean/std need {c} values (one per channel)")
            if min(self.std_values) <= 0:
                raise UserError(f"std must be positive, got {self.std_values}")
        self._set_stats(x.device)

    def _set_stats(self, device) -> None:
        shape = (1, -1) + (1,) * (self.x.dim() - 2)
        if self.mean_values is None:
            self._mean = self._std = None
        else:
            self._mean = torch.tensor(self.mean_values, dtype=torch.float32, device=device).view(shape)
            self._std = torch.tensor(self.std_values, dtype=torch.float32, device=device).view(shape)

    # --- basic properties -------------------------------------------------------------
    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        return (f"ArraySplit(n={len(self)}, shape={tuple(self.x.shape[1:])}, dtype={self.x.dtype}, "
                f"augment={self.augment!r}, device={self.device})")

    @property
    def labels(self) -> torch.Tensor:
        return self.y

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def num_views(self) -> int | None:
        """Distinct views per sample: 1 without augmentation, None if not enumerable."""
        return 1 if self.augment is None else self.augment.num_views

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def with_labels(self, new_labels) -> "ArraySplit":
        """A copy sharing x (no data copy) that yields `new_labels` (e.g. noisy ones)."""
        other = copy.copy(self)
        other.y = _check_labels(new_labels, len(self)).to(self.device)
        return other

    def subset(self, index, augment=KEEP) -> "ArraySplit":
        """The samples `index` (a copy of their rows, renumbered 0 .. len(index) - 1), with the
        same normalisation and this split's augmentation (or `augment`, e.g. None)."""
        index = torch.as_tensor(index, dtype=torch.long).to(self.device)
        aug = self.augment if augment is KEEP else augment
        return ArraySplit(self.x[index], self.y[index], aug, self.mean_values, self.std_values)

    def to(self, device) -> "ArraySplit":
        """Move x, y and the normalisation constants (in place; returns self)."""
        device = torch.device(device)
        self.x = self.x.to(device)
        self.y = self.y.to(device)
        if self.augment is not None:
            self.augment = self.augment.to(device)
        self._set_stats(device)
        return self

    # --- model inputs -----------------------------------------------------------------
    def _finish(self, raw: torch.Tensor) -> torch.Tensor:
        x = raw.float().div_(255.0) if raw.dtype == torch.uint8 else raw.float()
        if self._mean is not None:
            x = x.sub_(self._mean).div_(self._std) if x is not raw else (x - self._mean) / self._std
        return x

    def batches(self, batch_size: int, shuffle: bool, generator: torch.Generator | None,
                drop_last: bool = False, shard: tuple[int, int] | None = None) -> Iterator[Batch]:
        """One epoch: a permutation from `generator` (in order if not shuffle), per batch
        the view ids (from the same generator) and the augmented, normalised inputs.

        shard=(rank, world) (distributed training): every rank draws the same global
        permutation and random views and yields only its slice of each global batch
        (`shard_slice`): the ranks' slices together are exactly the one-process batches.
        Enumerable augmentations are applied to the slice only; random ones (noise) to the
        global batch, then sliced, so that the random draws stay those of one process."""
        order = _draw_order(len(self), shuffle, generator)
        for idx_cpu in _chunks(order, batch_size, drop_last):
            idx = idx_cpu.to(self.device)
            part = shard_slice(len(idx), shard)
            if self.augment is None:
                idx = idx[part]
                views = torch.zeros(len(idx), dtype=torch.long, device=self.device)
                raw = self.x[idx]
            else:
                views = self.augment.sample_views(len(idx), generator).to(self.device)
                if self.augment.num_views is None:
                    raw = self.augment.apply(self.x[idx], views, generator)[part]
                    idx, views = idx[part], None
                else:
                    idx, views = idx[part], views[part]
                    raw = self.augment.apply(self.x[idx], views, generator)
            yield Batch(self._finish(raw), self.y[idx], idx, views)

    def view(self, index, views=None) -> torch.Tensor:
        """Exactly the model input of the (sample, view) pairs, e.g. a batch's
        (index, views): deterministic. Raises for non-enumerable augmentations."""
        idx = torch.as_tensor(index, dtype=torch.long).to(self.device)
        raw = self.x[idx]
        if self.augment is None:
            if views is not None and bool((torch.as_tensor(views) != 0).any()):
                raise UserError("this split has no augmentation: its only view is 0")
            return self._finish(raw)
        if self.augment.num_views is None:
            raise UserError(f"{self.augment!r} is not enumerable (random noise): an input cannot be rebuilt "
                            "from a view id; disable the noise or run the teacher on the live batch")
        if views is None:
            raise UserError("an augmented split needs the view ids to rebuild its inputs")
        views = torch.as_tensor(views, dtype=torch.long).to(self.device)
        return self._finish(self.augment.apply(raw, views, None))


class _IndexedFolder(torch.utils.data.Dataset):
    """ImageFolder samples -> (transformed image, label, index) with per-sample seeding.

    Each sample's random transform runs under its own seed, `epoch_seed + index` mixed,
    inside a forked RNG: the result depends only on the generator that drew `epoch_seed`
    and the sample, not on the worker count, and the caller's global RNG is untouched.
    """

    def __init__(self, samples: list[tuple[str, int]], labels: torch.Tensor,
                 transform: Callable, loader: Callable):
        self.paths = [p for p, _ in samples]
        self.labels = labels
        self.transform = transform
        self.loader = loader
        self.epoch_seed = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        img = self.loader(self.paths[index])
        seed = (self.epoch_seed * 6364136223846793005 + index * 1442695040888963407) % (2 ** 63)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            x = self.transform(img)
        return x, self.labels[index], index


class FolderSplit:
    """An ImageFolder tree (`root/<class>/<image>`) decoded through a torch DataLoader.

    `transform` maps a PIL image to the normalised float tensor (see data/folders.py for
    the ImageNet and TinyImageNet ones). Views are not enumerable (None). `num_workers`
    DataLoader processes decode images; the order and every sample's random transform
    come from the `generator` given to `batches`.
    """

    num_views = None

    def __init__(self, root, transform: Callable, num_workers: int = 0, folder=None):
        from torchvision.datasets import ImageFolder  # noqa: local import keeps `import data` light

        self.root = Path(root)
        self.folder = folder if folder is not None else ImageFolder(str(self.root))
        self.classes = list(self.folder.classes)
        self.transform = transform
        self.num_workers = int(num_workers)
        self.y = torch.tensor([t for _, t in self.folder.samples], dtype=torch.long)
        self._device = torch.device("cpu")

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __repr__(self) -> str:
        return f"FolderSplit(root={str(self.root)!r}, n={len(self)}, classes={len(self.classes)})"

    @property
    def labels(self) -> torch.Tensor:
        return self.y

    @property
    def device(self) -> torch.device:
        return self._device

    def with_labels(self, new_labels) -> "FolderSplit":
        other = copy.copy(self)
        other.y = _check_labels(new_labels, len(self)).cpu()
        return other

    def to(self, device) -> "FolderSplit":
        """Batches are moved to `device` (pinned host memory for CUDA). In place; returns self."""
        self._device = torch.device(device)
        return self

    def view(self, index, views=None):
        raise UserError("FolderSplit augmentations (random resized crops) are not enumerable: "
                        "no input can be rebuilt from a view id")

    def batches(self, batch_size: int, shuffle: bool, generator: torch.Generator | None,
                drop_last: bool = False, shard: tuple[int, int] | None = None) -> Iterator[Batch]:
        """shard=(rank, world): this rank's slice of every global batch (see ArraySplit.batches);
        each sample's transform depends only on (epoch seed, index), so the slices are exactly
        the rows one process would have decoded."""
        order = _draw_order(len(self), shuffle, generator)
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        if generator is None and not shuffle:
            epoch_seed = 0    # an in-order pass (evaluation) leaves the global RNG alone
        else:
            device = generator.device if generator is not None else torch.device("cpu")
            epoch_seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator, device=device))
        dataset = _IndexedFolder(self.folder.samples, self.y, self.transform, self.folder.loader)
        dataset.epoch_seed = epoch_seed
        cuda = self._device.type == "cuda"
        slices = [chunk[shard_slice(len(chunk), shard)].tolist() for chunk in _chunks(order, batch_size, drop_last)]
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=[s for s in slices if s],
            num_workers=self.num_workers, pin_memory=cuda,
            # the loader draws its workers' base seed from here, not from the global RNG
            generator=torch.Generator().manual_seed(epoch_seed),
        )
        batches = iter(loader)
        shape = None
        for rows in slices:
            if rows:
                x, y, index = next(batches)
                shape = x.shape[1:]
            else:   # a global batch smaller than the world size: this rank gets no rows
                if shape is None:
                    shape = dataset[0][0].shape
                x, y, index = torch.empty(0, *shape), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
            if self._device.type != "cpu":
                x, y, index = (t.to(self._device, non_blocking=True) for t in (x, y, index))
            yield Batch(x, y, index, None)
