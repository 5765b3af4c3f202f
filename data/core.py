"""The data set registry, the bundle a data set builds, and where data lives on disk."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import Registry

DATASETS = Registry("dataset")

ENV_ROOT = "LOGIT_KD_DATA"
DEFAULT_ROOT = "data_cache"


@dataclass
class DataBundle:
    name: str
    train: Any                      # ArraySplit or FolderSplit; augments
    test: Any                       # same kind; never augments
    num_classes: int
    in_channels: int
    input_shape: tuple              # one sample's model input, e.g. (3, 32, 32) or (1, 40)
    info: dict = field(default_factory=dict)   # source, counts, normalisation, augmentation, root


def resolve_root(root=None) -> Path:
    """The data root: `root`, else $LOGIT_KD_DATA, else ./data_cache; a relative path is
    taken from the current working directory (never from this source file)."""
    if root is None or str(root) == "":
        root = os.environ.get(ENV_ROOT) or DEFAULT_ROOT
    return (Path.cwd() / Path(root).expanduser()).resolve()


def build_dataset(name: str, root=None, download: bool = False, **options) -> DataBundle:
    """Build a registered data set; unknown names or options raise UserError listing the
    allowed ones, missing files raise DataNotFound naming the path and how to get them."""
    return DATASETS.build(name, root=resolve_root(root), download=bool(download), **options)


def list_datasets() -> list[str]:
    return DATASETS.names()
