"""The data set registry, the bundle a data set builds, and where data lives on disk.

Two things every in-memory data set gets here rather than in its own builder:
- a class hierarchy: `DataBundle.coarse_of_fine` (fine class -> coarse class, like the
  20 superclasses of CIFAR-100's 100 classes), with `coarse_labels()` and `sibling_mask()`;
- a validation split: `build_dataset(..., validation=N or fraction)` carves N training
  samples (stratified by class, seeded) to be the evaluation split (`bundle.test`) in place
  of the test set, so that hyperparameters can be chosen without looking at the test set.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import Registry, UserError


class DatasetRegistry(Registry):
    """The data set registry: every registered builder also takes the options every
    in-memory data set shares, `validation=None` and `validation_seed=0` (see build_dataset),
    and they appear in its signature, so option checks (`Registry.build`, the engine's
    validation) know them. The module-level builder stays undecorated."""

    def register(self, name: str | None = None):
        add = super().register(name)

        def decorator(factory):
            add(_with_validation(factory))
            return factory

        return decorator


def _with_validation(factory):
    sig = inspect.signature(factory)
    if {"validation", "validation_seed"} & set(sig.parameters):
        raise KeyError(f"data set builder {factory.__name__} must not define validation options itself")

    @functools.wraps(factory)
    def build(*args, validation=None, validation_seed: int = 0, **kwargs) -> DataBundle:
        bundle = factory(*args, **kwargs)
        if validation is None:
            bundle.info.setdefault("evaluation", "test")
            return bundle
        return carve_validation(bundle, validation, validation_seed)

    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    extra = [inspect.Parameter("validation", inspect.Parameter.KEYWORD_ONLY, default=None),
             inspect.Parameter("validation_seed", inspect.Parameter.KEYWORD_ONLY, default=0)]
    rest = [p for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD]
    build.__signature__ = sig.replace(parameters=params + extra + rest)
    return build


DATASETS = DatasetRegistry("dataset")

ENV_ROOT = "LOGIT_KD_DATA"
DEFAULT_ROOT = "data_cache"


@dataclass
class DataBundle:
    name: str
    train: Any                      # ArraySplit or FolderSplit; augments
    test: Any                       # same kind; never augments (the validation part with `validation`)
    num_classes: int
    in_channels: int
    input_shape: tuple              # one sample's model input, e.g. (3, 32, 32) or (1, 40)
    info: dict = field(default_factory=dict)   # source, counts, normalisation, augmentation, root
    # Class hierarchy, or None: coarse_of_fine[c] is the coarse class of fine class c, a tuple
    # of num_classes ints covering 0 .. num_coarse - 1 (every coarse class has a member).
    coarse_of_fine: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.coarse_of_fine is None:
            return
        mapping = tuple(int(c) for c in self.coarse_of_fine)
        if len(mapping) != self.num_classes:
            raise UserError(f"{self.name}: coarse_of_fine needs {self.num_classes} entries (one per class), "
                            f"got {len(mapping)}")
        if min(mapping) < 0 or set(mapping) != set(range(max(mapping) + 1)):
            raise UserError(f"{self.name}: coarse_of_fine must use every coarse class 0 .. K-1, "
                            f"got {sorted(set(mapping))}")
        self.coarse_of_fine = mapping

    @property
    def num_coarse(self) -> int | None:
        """Number of coarse classes, or None without a hierarchy."""
        return None if self.coarse_of_fine is None else max(self.coarse_of_fine) + 1

    def _mapping(self) -> torch.Tensor:
        if self.coarse_of_fine is None:
            raise UserError(f"data set {self.name} has no class hierarchy (coarse_of_fine is None)")
        return torch.tensor(self.coarse_of_fine, dtype=torch.long)

    def coarse_labels(self, labels) -> torch.Tensor:
        """Coarse labels of fine labels (a tensor, or a split: its `labels`), on their device."""
        labels = labels.labels if hasattr(labels, "labels") else torch.as_tensor(labels)
        return self._mapping().to(labels.device)[labels.long()]

    def sibling_mask(self) -> torch.Tensor:
        """(C, C) bool: True where two different fine classes share a coarse class."""
        m = self._mapping()
        return (m[:, None] == m[None, :]) & ~torch.eye(len(m), dtype=torch.bool)


def resolve_root(root=None) -> Path:
    """The data root: `root`, else $LOGIT_KD_DATA, else ./data_cache; a relative path is
    taken from the current working directory (never from this source file)."""
    if root is None or str(root) == "":
        root = os.environ.get(ENV_ROOT) or DEFAULT_ROOT
    return (Path.cwd() / Path(root).expanduser()).resolve()


def build_dataset(name: str, root=None, download: bool = False, **options) -> DataBundle:
    """Build a registered data set; unknown names or options raise UserError listing the
    allowed ones, missing files raise DataNotFound naming the path and how to get them.

    Every data set also takes validation=None (evaluate on the test set), or an int N >= 1 or a
    fraction in (0, 1) of the training split the data set returns (after its own options such
    as num_train): that many samples, stratified by class with `validation_seed` (default 0;
    `validation_indices`), become `bundle.test` (unaugmented) and leave `bundle.train`; the
    test set is dropped from the bundle. In-memory (ArraySplit) data sets only."""
    return DATASETS.build(name, root=resolve_root(root), download=bool(download), **options)


def list_datasets() -> list[str]:
    return DATASETS.names()


# --- validation split ------------------------------------------------------------------
def validation_count(validation, n: int) -> int:
    """The number of validation samples out of n: an int as it is, a float in (0, 1) as
    round(fraction * n); at least 1 and at most n - 1, else UserError."""
    if isinstance(validation, bool) or not isinstance(validation, (int, float, np.integer, np.floating)):
        raise UserError(f"validation must be an integer count or a fraction in (0, 1), got {validation!r}")
    if isinstance(validation, (float, np.floating)):
        if not 0 < validation < 1:
            raise UserError(f"a validation fraction must be in (0, 1), got {validation}")
        count = int(round(float(validation) * n))
    else:
        count = int(validation)
    if not 1 <= count <= n - 1:
        raise UserError(f"validation must leave at least one training sample and take at least one: "
                        f"asked for {validation!r} of {n} training samples")
    return count


def validation_indices(labels, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified, seeded split of range(len(labels)) -> (train_index, val_index), both sorted.

    A permutation from numpy's default_rng(seed) orders each class's samples; sample i, the
    r-th of its class c (n_c samples), gets the key (r + 0.5) / n_c, and the `count` smallest
    keys (ties: the permutation's order) are the validation samples. So every class gives
    count * n_c / n samples, within one, and the split depends only on (labels, count, seed)."""
    y = torch.as_tensor(labels).cpu().numpy().astype(np.int64)
    n = len(y)
    perm = np.random.default_rng(seed).permutation(n)
    by_class = perm[np.argsort(y[perm], kind="stable")]          # each class's samples in permuted order
    sorted_y = y[by_class]
    starts = np.searchsorted(sorted_y, sorted_y, side="left")
    rank = np.arange(n) - starts                                   # position within its class
    size = np.bincount(y)[sorted_y]
    key = (rank + 0.5) / size
    tie = np.empty(n, np.int64)
    tie[perm] = np.arange(n)                                       # position in the permutation
    chosen = by_class[np.lexsort((tie[by_class], key))[:count]]
    mask = np.zeros(n, bool)
    mask[chosen] = True
    return torch.from_numpy(np.flatnonzero(~mask)), torch.from_numpy(np.flatnonzero(mask))


def carve_validation(bundle: DataBundle, validation, seed: int = 0) -> DataBundle:
    """A bundle whose test split is `validation` samples carved from its training split
    (see build_dataset); info gains "evaluation": "validation" and "validation" details."""
    from data.splits import ArraySplit

    if not isinstance(bundle.train, ArraySplit):
        raise UserError(f"validation needs an in-memory data set; {bundle.name} reads image folders: "
                        "make a validation folder instead")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise UserError(f"validation_seed must be an integer, got {seed!r}")
    n = len(bundle.train)
    count = validation_count(validation, n)
    train_idx, val_idx = validation_indices(bundle.train.labels, count, int(seed))
    info = dict(bundle.info)
    counts = dict(info.get("counts", {}))
    counts.update({"train": len(train_idx), "validation": len(val_idx)})
    counts.pop("test", None)
    info["counts"] = counts
    info["evaluation"] = "validation"
    info["validation"] = {"count": count, "of": n, "seed": int(seed), "asked": validation,
                          "method": "stratified by class, seeded permutation (data.core.validation_indices)",
                          "test_set": "not used (dropped from the bundle)"}
    return dataclasses.replace(bundle, train=bundle.train.subset(train_idx),
                               test=bundle.train.subset(val_idx, augment=None), info=info)
