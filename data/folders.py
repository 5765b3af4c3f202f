"""ImageFolder data sets decoded from files: TinyImageNet and ImageNet.

Expected layout (one folder per class in both splits, as torchvision's ImageFolder reads):

    <root>/tiny-imagenet-200/train/<wnid>/images/*.JPEG    (as unzipped)
    <root>/tiny-imagenet-200/val/<wnid>/*.JPEG             (val sorted into class folders)
    <root>/imagenet/train/<wnid>/*.JPEG
    <root>/imagenet/val/<wnid>/*.JPEG

TinyImageNet's zip ships val as val/images/*.JPEG plus val/val_annotations.txt; sort it
once with `python -m data.folders sort-tinyimagenet-val <root>/tiny-imagenet-200`
(`download=True` downloads, unzips and sorts). ImageNet cannot be downloaded
automatically (registration at image-net.org); see IMAGENET_STEPS.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from common import UserError
from common.errors import DataNotFound
from data.core import DATASETS, DataBundle
from data.splits import FolderSplit

IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))   # torchvision / both papers' code
TINY_NORMS = {
    # paper 1 official code (jhoon-oh/kd_data, tiny_imagenet_setter)
    "kd_data": ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
    # megvii-research/mdistiller dataset/tiny_imagenet.py
    "mdistiller": ((0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)),
}
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_DIR = "tiny-imagenet-200"
IMAGENET_DIR = "imagenet"
IMAGENET_STEPS = (
    "ImageNet cannot be downloaded automatically: register at https://image-net.org/download-images, get "
    "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar, untar train/ into one folder per synset "
    "(untar each nXXXXXXXX.tar into train/nXXXXXXXX/) and sort the 50000 val images into val/<synset>/ "
    "(e.g. with valprep.sh from github.com/soumith/imagenetloader.torch)")


def _default_workers(num_workers: int | None) -> int:
    return min(8, os.cpu_count() or 1) if num_workers is None else int(num_workers)


def tiny_val_unsorted(base: Path) -> bool:
    val = Path(base) / "val"
    return (val / "val_annotations.txt").is_file() and (val / "images").is_dir()


def sort_tinyimagenet_val(base) -> int:
    """Move TinyImageNet's val/images/<file> into val/<wnid>/<file> following
    val/val_annotations.txt. Idempotent; returns the number of images moved."""
    val = Path(base) / "val"
    ann = val / "val_annotations.txt"
    if not ann.is_file():
        raise DataNotFound(f"TinyImageNet val annotations not found at {ann}")
    moved = 0
    for line in ann.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        name, wnid = parts[0], parts[1]
        src, dst = val / "images" / name, val / wnid / name
        if src.is_file():
            dst.parent.mkdir(exist_ok=True)
            os.replace(src, dst)
            moved += 1
    images = val / "images"
    if images.is_dir() and not any(images.iterdir()):
        images.rmdir()
    return moved


def _folder_pair(title: str, base: Path, how: str):
    """ImageFolder for base/train and base/val, or DataNotFound naming the path."""
    from torchvision.datasets import ImageFolder

    folders = []
    for split in ("train", "val"):
        path = base / split
        if not path.is_dir():
            raise DataNotFound(f"{title} not found at {path} (expected {base}/{{train,val}}/<class>/<images>): {how}")
        try:
            folders.append(ImageFolder(str(path)))
        except (FileNotFoundError, OSError) as e:
            detail = " ".join(str(e).split())
            raise DataNotFound(f"{title} incomplete at {path} ({detail}): {how}") from e
    if folders[0].classes != folders[1].classes:
        raise DataNotFound(f"{title} incomplete at {base}: train has {len(folders[0].classes)} class folders, "
                           f"val {len(folders[1].classes)}, and they differ: {how}")
    return folders


def _bundle(name, title, base, folders, train_tf, test_tf, num_workers, input_shape, info) -> DataBundle:
    train = FolderSplit(base / "train", train_tf, num_workers, folder=folders[0])
    test = FolderSplit(base / "val", test_tf, num_workers, folder=folders[1])
    info = {**info, "root": str(base), "counts": {"train": len(train), "test": len(test)},
            "num_workers": num_workers}
    return DataBundle(name, train, test, num_classes=len(train.classes), in_channels=3,
                      input_shape=input_shape, info=info)


@DATASETS.register("tinyimagenet")
def tinyimagenet(root: Path, download: bool = False, norm: str = "kd_data", augment: bool = True,
                 num_workers: int | None = None) -> DataBundle:
    """TinyImageNet-200 (100000 train / 10000 val 64x64 images): train crop pad 4 +
    flip (paper 1's code), test unchanged. norm: "kd_data" or "mdistiller"."""
    from torchvision import transforms as T

    if norm not in TINY_NORMS:
        raise UserError(f"tinyimagenet norm must be one of {', '.join(TINY_NORMS)}, got '{norm}'")
    base = root / TINY_DIR
    how = (f"rerun with --download (download=True; needs internet, about 240 MB from {TINY_URL}) or unzip it "
           f"into {root} and run `python -m data.folders sort-tinyimagenet-val {base}`")
    if download and not ((base / "train").is_dir() and (base / "val").is_dir()):
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(TINY_URL, download_root=str(root), filename="tiny-imagenet-200.zip")
        except (OSError, RuntimeError) as e:
            raise DataNotFound(f"TinyImageNet download failed into {base} ({e}): {how}") from e
    if download and tiny_val_unsorted(base):
        sort_tinyimagenet_val(base)
    if tiny_val_unsorted(base):
        raise DataNotFound(f"TinyImageNet val at {base / 'val'} is not sorted into class folders: run "
                           f"`python -m data.folders sort-tinyimagenet-val {base}` (or rerun with --download)")
    folders = _folder_pair("TinyImageNet", base, how)
    mean, std = TINY_NORMS[norm]
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    train_tf = T.Compose(([T.RandomCrop(64, padding=4), T.RandomHorizontalFlip()] if augment else []) + tail)
    test_tf = T.Compose(tail)
    info = {"source": "torchvision.datasets.ImageFolder", "normalisation": {"name": norm, "mean": list(mean),
            "std": list(std)}, "augment": "RandomCrop(64, padding=4) + flip" if augment else "none"}
    return _bundle("tinyimagenet", "TinyImageNet", base, folders, train_tf, test_tf,
                   _default_workers(num_workers), (3, 64, 64), info)


@DATASETS.register("imagenet")
def imagenet(root: Path, download: bool = False, augment: bool = True, num_workers: int | None = None) -> DataBundle:
    """ImageNet-1k (ILSVRC2012) from root/imagenet/{train,val}: train RandomResizedCrop 224
    + flip, test Resize 256 + CenterCrop 224; torchvision's normalisation."""
    from torchvision import transforms as T

    base = root / IMAGENET_DIR
    if download:
        raise UserError(f"--download is not available for ImageNet. {IMAGENET_STEPS}; put them in {base}")
    folders = _folder_pair("ImageNet", base, IMAGENET_STEPS)
    mean, std = IMAGENET_NORM
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    train_tf = T.Compose(([T.RandomResizedCrop(224), T.RandomHorizontalFlip()] if augment
                          else [T.Resize(256), T.CenterCrop(224)]) + tail)
    test_tf = T.Compose([T.Resize(256), T.CenterCrop(224)] + tail)
    info = {"source": "torchvision.datasets.ImageFolder", "normalisation": {"name": "imagenet", "mean": list(mean),
            "std": list(std)}, "augment": "RandomResizedCrop(224) + flip" if augment else "none"}
    return _bundle("imagenet", "ImageNet", base, folders, train_tf, test_tf,
                   _default_workers(num_workers), (3, 224, 224), info)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.folders", description="prepare ImageFolder data sets")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sort-tinyimagenet-val", help="sort val/images into val/<wnid>/ folders")
    p.add_argument("base", help="the tiny-imagenet-200 folder")
    args = parser.parse_args(argv)
    try:
        moved = sort_tinyimagenet_val(Path(args.base))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"moved {moved} images into class folders under {Path(args.base) / 'val'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
