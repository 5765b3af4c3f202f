"""torchvision's in-memory image sets: CIFAR-10, CIFAR-100, STL-10.

torchvision reads the files (and checks their md5); the pixels then live in an
`ArraySplit` as a uint8 (N, 3, H, W) tensor, augmented in batches on the training device.
Default root layout (torchvision's): root/cifar-10-batches-py, root/cifar-100-python,
root/stl10_binary. `download=True` is passed to torchvision (needs internet).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from common import UserError
from common.errors import DataNotFound
from data.augment import CropFlip
from data.core import DATASETS, DataBundle
from data.splits import ArraySplit

# Per-channel (mean, std) of pixels in [0, 1], by the code that used them.
NORMS = {
    "cifar10": {
        # paper 1 official code (jhoon-oh/kd_data, tools/data_setter.py cifar_10_setter)
        "kd_data": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    },
    "cifar100": {
        # paper 1 official code (jhoon-oh/kd_data, cifar_100_setter); docs/papers.md
        "kd_data": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
        # paper 2's protocol (megvii-research/mdistiller CIFAR-100); docs/papers.md
        "mdistiller": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    },
    "stl10": {},   # no paper constants: "computed" from the training pixels
}

_SOURCES = {
    "cifar10": ("CIFAR-10", "cifar-10-batches-py", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "about 170 MB"),
    "cifar100": ("CIFAR-100", "cifar-100-python", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                 "about 170 MB"),
    "stl10": ("STL-10", "stl10_binary", "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "about 2.6 GB"),
}


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) std of uint8 pixels, in [0, 1] units,
    from 256-bin histograms (no float copy of the data)."""
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1).long(), minlength=256).double()
        total = counts.sum()
        mean = (counts * levels).sum() / total
        var = (counts * (levels - mean) ** 2).sum() / total
        means.append(round(float(mean), 4))
        stds.append(round(float(var.sqrt()), 4))
    return tuple(means), tuple(stds)


def _norm(name: str, norm: str, train_x: torch.Tensor):
    table = NORMS[name]
    if norm == "computed":
        return channel_stats(train_x)
    if norm not in table:
        raise UserError(f"{name} norm must be one of {', '.join([*table, 'computed'])}, got '{norm}'")
    return table[norm]


def _missing(name: str, root: Path, problem: str, detail: str = "") -> DataNotFound:
    title, folder, url, size = _SOURCES[name]
    return DataNotFound(
        f"{title} {problem} at {root / folder}{detail}: rerun with --download (download=True; needs internet, "
        f"{size} from {url}), or extract that archive into {root} yourself")


def _open(name: str, root: Path, download: bool, make):
    """Call torchvision (`make(train_flag)`), turning its missing/corrupt-data and download
    errors into one DataNotFound naming the path."""
    folder = root / _SOURCES[name][1]
    if not download and not folder.is_dir():
        raise _missing(name, root, "not found")
    try:
        return make(True), make(False)
    except (RuntimeError, OSError, KeyError, EOFError, ValueError, pickle.UnpicklingError) as e:
        if isinstance(e, DataNotFound):
            raise
        what = "download failed" if download else "incomplete or corrupted"
        first_line = str(e).splitlines()[0] if str(e) else ""
        raise _missing(name, root, what, f" ({type(e).__name__}: {first_line})") from e


def cifar100_coarse_of_fine(root: Path) -> tuple[int, ...] | None:
    """CIFAR-100's 20 superclasses: fine class -> coarse class, read from the per-image
    `fine_labels` / `coarse_labels` of the test file (then the train file if some fine class
    is missing there), which torchvision's reader drops. None when the files do not show
    every fine class or disagree (e.g. tiny test fixtures)."""
    mapping: dict[int, int] = {}
    for part in ("test", "train"):
        try:
            with open(root / "cifar-100-python" / part, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            pairs = zip(entry["fine_labels"], entry["coarse_labels"])
        except (OSError, KeyError, EOFError, pickle.UnpicklingError):
            return None
        for fine, coarse in pairs:
            if mapping.setdefault(int(fine), int(coarse)) != int(coarse):
                return None
        if len(mapping) == 100:
            break
    if sorted(mapping) != list(range(100)) or set(mapping.values()) != set(range(20)):
        return None
    return tuple(mapping[f] for f in range(100))


def _cifar(name: str, cls_name: str, num_classes: int, root: Path, download: bool, norm: str,
           augment: bool) -> DataBundle:
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    train, test = _open(name, root, download, lambda tr: cls(root=str(root), train=tr, download=download))
    x = torch.from_numpy(np.ascontiguousarray(train.data.transpose(0, 3, 1, 2)))    # (N, 3, 32, 32) uint8
    x_test = torch.from_numpy(np.ascontiguousarray(test.data.transpose(0, 3, 1, 2)))
    y = torch.tensor(train.targets, dtype=torch.long)
    y_test = torch.tensor(test.targets, dtype=torch.long)
    mean, std = _norm(name, norm, x)
    aug = CropFlip(pad=4, size=32) if augment else None
    for labels in (y, y_test):
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise _missing(name, root, f"has labels outside [0, {num_classes})")
    info = {"source": f"torchvision.datasets.{cls_name}", "root": str(root / _SOURCES[name][1]),
            "counts": {"train": len(y), "test": len(y_test)},
            "normalisation": {"name": norm, "mean": list(mean), "std": list(std)},
            "augment": repr(aug), "num_views": aug.num_views if aug else 1, "classes": list(train.classes)}
    hierarchy = cifar100_coarse_of_fine(root) if name == "cifar100" else None
    if name == "cifar100":
        info["hierarchy"] = "20 superclasses (from the files' coarse_labels)" if hierarchy else \
            "none: the files do not show all 100 classes with their superclasses"
    return DataBundle(name, ArraySplit(x, y, aug, mean, std), ArraySplit(x_test, y_test, None, mean, std),
                      num_classes=num_classes, in_channels=3, input_shape=(3, 32, 32), info=info,
                      coarse_of_fine=hierarchy)


@DATASETS.register("cifar10")
def cifar10(root: Path, download: bool = False, norm: str = "kd_data", augment: bool = True) -> DataBundle:
    """CIFAR-10, 50000 / 10000 32x32 images; train: crop pad 4 + flip (162 views).
    norm: "kd_data" (paper 1's code) or "computed" (this training split's statistics)."""
    return _cifar("cifar10", "CIFAR10", 10, root, download, norm, augment)


@DATASETS.register("cifar100")
def cifar100(root: Path, download: bool = False, norm: str = "kd_data", augment: bool = True) -> DataBundle:
    """CIFAR-100, 50000 / 10000 32x32 images, 100 classes; train: crop pad 4 + flip (162
    views). norm: "kd_data" (paper 1), "mdistiller" (paper 2) or "computed". The bundle's
    `coarse_of_fine` holds the 20 superclasses (`cifar100_coarse_of_fine`)."""
    return _cifar("cifar100", "CIFAR100", 100, root, download, norm, augment)


@DATASETS.register("stl10")
def stl10(root: Path, download: bool = False, norm: str = "computed", augment: bool = True) -> DataBundle:
    """STL-10 labelled images, 5000 train / 8000 test, 96x96, 10 classes; train: crop with
    12 pixels of zero padding + flip (25 * 25 * 2 = 1250 views). No paper publishes
    STL-10 constants: normalised with the training split's own per-channel statistics."""
    import torchvision.datasets as tvd

    train, test = _open("stl10", root, download,
                        lambda tr: tvd.STL10(root=str(root), split="train" if tr else "test", download=download))
    x = torch.from_numpy(np.ascontiguousarray(train.data))          # (N, 3, 96, 96) uint8
    x_test = torch.from_numpy(np.ascontiguousarray(test.data))
    y = torch.from_numpy(train.labels.astype(np.int64))
    y_test = torch.from_numpy(test.labels.astype(np.int64))
    mean, std = _norm("stl10", norm, x)
    aug = CropFlip(pad=12, size=96) if augment else None
    classes = list(getattr(train, "classes", [])) or [str(i) for i in range(10)]
    info = {"source": "torchvision.datasets.STL10 (labelled train/test only)", "root": str(root / "stl10_binary"),
            "counts": {"train": len(y), "test": len(y_test)},
            "normalisation": {"name": norm, "mean": list(mean), "std": list(std)},
            "augment": repr(aug), "num_views": aug.num_views if aug else 1, "classes": classes}
    return DataBundle("stl10", ArraySplit(x, y, aug, mean, std), ArraySplit(x_test, y_test, None, mean, std),
                      num_classes=10, in_channels=3, input_shape=(3, 96, 96), info=info)
