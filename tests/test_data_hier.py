"""mnist1d_hier (100 classes, 20 coarse x 5 fine, data/hier.py), the class hierarchy of a
DataBundle (also CIFAR-100's superclasses) and the generic validation split of every data set
(data/core.py).

Most tests generate a small version (2000 signals, 20 per class: about 0.5 s); one builds the
default 14000 once (about 4 s) to check the documented counts."""
import dataclasses

import numpy as np
import pytest
import torch

from common import UserError
from data import DataBundle, build_dataset
from data.core import validation_indices
from data.hier import coarse_of_fine, hier_templates
from data_helpers import accept_any_md5, write_cifar100  # noqa: F401  (a fixture)

SMALL = {"num_samples": 2000, "num_test": 800}      # 1200 train / 800 test, 20 signals per class


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("hier_root")


@pytest.fixture(scope="module")
def small(root):
    return build_dataset("mnist1d_hier", root=root, **SMALL)


# --- the data set ----------------------------------------------------------------------
def test_default_counts_shapes_and_hierarchy(root):
    bundle = build_dataset("mnist1d_hier", root=root)
    assert (bundle.num_classes, bundle.in_channels, bundle.input_shape) == (100, 1, (1, 40))
    assert bundle.info["counts"] == {"train": 8000, "test": 6000, "train_available": 8000}
    assert bundle.train.x.shape == (8000, 1, 40) and bundle.train.x.dtype == torch.float32
    assert bundle.test.x.shape == (6000, 1, 40)
    args = bundle.info["generator_args"]
    assert (args["num_samples"], args["seed"], int(args["num_samples"] * args["train_split"])) == (14000, 42, 8000)
    # every fine class has exactly 140 signals (make_dataset draws num_samples // 100 per class)
    total = torch.bincount(torch.cat([bundle.train.labels, bundle.test.labels]), minlength=100)
    assert (total == 140).all()
    train = torch.bincount(bundle.train.labels, minlength=100)
    assert (train.min().item(), train.max().item()) == (69, 93)      # a random, unstratified split (docstring)
    assert bundle.coarse_of_fine == tuple(f // 5 for f in range(100)) and bundle.num_coarse == 20
    assert torch.equal(bundle.coarse_labels(bundle.test), bundle.test.labels // 5)
    x = torch.cat([bundle.train.x, bundle.test.x])
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3   # the generator standardises
    assert bundle.train.augment.num_views is None and bundle.test.augment is None
    assert bundle.info["evaluation"] == "test"


def test_small_counts_balanced_and_cached(root, small):
    assert small.info["counts"] == {"train": 1200, "test": 800, "train_available": 1200}
    total = torch.bincount(torch.cat([small.train.labels, small.test.labels]), minlength=100)
    assert (total == 20).all()
    assert small.info["cache"].startswith(str(root / "mnist1d_hier"))
    again = build_dataset("mnist1d_hier", root=root, **SMALL)
    assert again.info["generated"] is False and again.info["cache"] == small.info["cache"]
    assert torch.equal(again.train.x, small.train.x) and torch.equal(again.test.labels, small.test.labels)


def test_deterministic_from_the_seeds_and_rng_untouched(tmp_path, small):
    np_state = np.random.get_state()[1].copy()
    fresh = build_dataset("mnist1d_hier", root=tmp_path, **SMALL)       # generated anew elsewhere
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert fresh.info["generated"] is True
    assert torch.equal(fresh.train.x, small.train.x) and torch.equal(fresh.test.x, small.test.x)
    assert torch.equal(fresh.train.labels, small.train.labels)
    other = build_dataset("mnist1d_hier", root=tmp_path, template_seed=1, **SMALL)
    assert other.info["cache"] != fresh.info["cache"] and not torch.equal(other.train.x, fresh.train.x)
    sigma = build_dataset("mnist1d_hier", root=tmp_path, sigma=0.8, **SMALL)
    assert sigma.info["cache"] != fresh.info["cache"]
    np.testing.assert_array_equal(hier_templates()["x"], hier_templates()["x"])


def test_num_train_prefix_and_augment_options(root, small):
    part = build_dataset("mnist1d_hier", root=root, num_train=300, augment=True, noise_sigma=0.0, max_shift=2, **SMALL)
    assert len(part.train) == 300 and torch.equal(part.train.x, small.train.x[:300])
    assert part.train.augment.num_views == 5 and len(part.test) == 800
    b = next(part.train.batches(32, True, torch.Generator().manual_seed(0)))
    assert torch.equal(part.train.view(b.index, b.views), b.x)
    plain = build_dataset("mnist1d_hier", root=root, augment=False, **SMALL)
    assert plain.train.augment is None


def test_templates_follow_the_recipe():
    from mnist1d.data import get_templates

    t = hier_templates()
    assert t["x"].shape == (100, 12) and t["coarse"].shape == (20, 12) and t["t"].shape == (12,)
    np.testing.assert_array_equal(t["y"], np.arange(100))
    np.testing.assert_allclose(t["coarse"][:10], get_templates()["x"])       # the 10 digit templates first
    np.testing.assert_allclose(t["x"].std(1), 1 / 6)
    np.testing.assert_allclose(t["coarse"].std(1), 1 / 6)
    np.testing.assert_allclose(t["x"][:, 0], 0, atol=1e-12)                 # start (and end) at 0
    np.testing.assert_allclose(t["x"][:, -1], 0, atol=1e-12)
    assert coarse_of_fine()[:7] == (0, 0, 0, 0, 0, 1, 1)


def _sibling_stats(x: np.ndarray):
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    c = np.arange(100) // 5
    sib = (c[:, None] == c[None]) & ~np.eye(100, dtype=bool)
    non = c[:, None] != c[None]
    return np.array([d[i][sib[i]].mean() / d[i][non[i]].mean() for i in range(100)])


def test_siblings_closer_than_non_siblings_in_template_space():
    ratio = _sibling_stats(hier_templates(0.4)["x"])
    assert (ratio < 0.6).all()                # every class: siblings at most 0.6x the mean non-sibling distance
    assert ratio.mean() < 0.35
    assert _sibling_stats(hier_templates(0.8)["x"]).mean() > ratio.mean() + 0.15   # sigma loosens the hierarchy


def test_siblings_closer_than_non_siblings_in_signal_space(small):
    """1-NN on raw signals: its errors land in a sibling class far above chance (4 of 99)."""
    nearest = small.train.labels[torch.cdist(small.test.x[:, 0], small.train.x[:, 0]).argmin(1)]
    wrong = nearest != small.test.labels
    inside = (nearest[wrong] // 5 == small.test.labels[wrong] // 5).float().mean().item()
    assert inside > 2.5 * 4 / 99              # measured 0.149 at these settings


@pytest.mark.parametrize("bad", [
    {"sigma": 0}, {"sigma": -1.0}, {"sigma": "big"}, {"num_train": 0}, {"num_train": 1201}, {"num_train": 1.5},
    {"num_samples": 2050}, {"num_samples": 100}, {"num_test": 2000}, {"num_test": 0}, {"max_shift": -1},
    {"noise_sigma": -0.1}, {"template_seed": -1}, {"sigma_fine": 0.4},
])
def test_bad_options_are_user_errors(root, bad):
    opts = {**SMALL, **bad}
    with pytest.raises(UserError):
        build_dataset("mnist1d_hier", root=root, **opts)


# --- the hierarchy field -----------------------------------------------------------------
def test_bundle_hierarchy_field_and_helpers(small):
    mask = small.sibling_mask()
    assert mask.shape == (100, 100) and mask.sum().item() == 100 * 4 and not mask.diagonal().any()
    assert mask[0, 4] and not mask[0, 5] and mask[99, 95]
    assert small.coarse_labels(torch.tensor([0, 4, 5, 99])).tolist() == [0, 0, 1, 19]
    flat = build_dataset("synthetic", num_train=8, num_test=4, shape=(1, 16))
    assert flat.coarse_of_fine is None and flat.num_coarse is None
    with pytest.raises(UserError, match="no class hierarchy"):
        flat.coarse_labels(flat.test)
    with pytest.raises(UserError, match="entries"):
        dataclasses.replace(flat, coarse_of_fine=(0, 1))
    with pytest.raises(UserError, match="every coarse class"):
        dataclasses.replace(flat, coarse_of_fine=(0, 2) * 5)
    ok = dataclasses.replace(flat, coarse_of_fine=[0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    assert isinstance(ok, DataBundle) and ok.num_coarse == 3 and ok.coarse_of_fine[2] == 1


# --- validation split ----------------------------------------------------------------------
def test_validation_split_is_stratified_disjoint_and_never_the_test_set(root, small):
    val = build_dataset("mnist1d_hier", root=root, validation=300, **SMALL)
    assert val.info["evaluation"] == "validation"
    assert val.info["counts"]["train"] == 900 and val.info["counts"]["validation"] == 300
    assert len(val.train) == 900 and len(val.test) == 300 and val.test.augment is None
    assert repr(val.train.augment) == repr(small.train.augment)
    assert val.coarse_of_fine == small.coarse_of_fine
    train_idx, val_idx = validation_indices(small.train.labels, 300, 0)
    assert torch.equal(val.train.x, small.train.x[train_idx]) and torch.equal(val.test.x, small.train.x[val_idx])
    assert torch.equal(val.test.labels, small.train.labels[val_idx])
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(1200))
    # never the test set: no validation signal equals any test signal (or any remaining training one)
    flat = lambda s: {tuple(r) for r in s.x[:, 0].numpy().round(6).tolist()}  # noqa: E731
    assert not flat(val.test) & flat(small.test) and not flat(val.test) & flat(val.train)
    # stratified: each class gives 300/1200 of its samples, within one
    per_class = torch.bincount(small.train.labels, minlength=100).double()
    taken = torch.bincount(val.test.labels, minlength=100).double()
    assert ((taken - per_class / 4).abs() <= 1).all()
    frac = build_dataset("mnist1d_hier", root=root, validation=0.25, **SMALL)
    assert torch.equal(frac.test.x, val.test.x)
    other = build_dataset("mnist1d_hier", root=root, validation=300, validation_seed=1, **SMALL)
    assert not torch.equal(other.test.x, val.test.x)


def test_validation_is_generic_and_checked(root):
    digits = build_dataset("digits", validation=137)            # 1437 training images
    assert (len(digits.train), len(digits.test)) == (1300, 137) and digits.info["evaluation"] == "validation"
    assert digits.test.mean_values == digits.train.mean_values and digits.test.augment is None
    syn = build_dataset("synthetic", num_train=40, num_test=10, shape=(1, 16), validation=0.5)
    assert (len(syn.train), len(syn.test)) == (20, 20)
    for bad in (0, 40, 1.0, 0.0, -3, True, "100", 0.001):
        with pytest.raises(UserError, match="validation"):
            build_dataset("synthetic", num_train=40, num_test=10, shape=(1, 16), validation=bad)
    with pytest.raises(UserError, match="validation_seed"):
        build_dataset("synthetic", num_train=40, num_test=10, shape=(1, 16), validation=5, validation_seed=0.5)


def test_validation_options_are_in_every_registered_signature():
    import inspect

    from common.registry import check_kwargs
    from data import DATASETS, list_datasets
    from data.offline import mnist1d

    for name in list_datasets():
        params = inspect.signature(DATASETS.get(name)).parameters
        assert params["validation"].default is None and params["validation_seed"].default == 0, name
    check_kwargs(DATASETS.get("mnist1d_hier"), {"validation": 100, "sigma": 0.4}, "mnist1d_hier")   # no raise
    assert "validation" not in inspect.signature(mnist1d).parameters          # the module's builder is untouched
    with pytest.raises(UserError, match="image folders"):
        from data.core import carve_validation
        from data.splits import FolderSplit
        fake = DataBundle("folders", FolderSplit.__new__(FolderSplit), None, 10, 3, (3, 8, 8))
        carve_validation(fake, 10)


def test_validation_indices_exact_counts_and_uneven_classes():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    tr, va = validation_indices(labels, 10, seed=3)
    assert len(va) == 10 and len(tr) == 90
    assert torch.bincount(labels[va], minlength=3).tolist() == [5, 3, 2]
    tr2, va2 = validation_indices(labels, 10, seed=3)
    assert torch.equal(va, va2) and torch.equal(tr, tr2)
    assert torch.equal(va, torch.sort(va).values)
    odd = validation_indices(labels, 7, seed=0)[1]
    assert len(odd) == 7 and (torch.bincount(labels[odd], minlength=3) - torch.tensor([3.5, 2.1, 1.4])).abs().max() <= 1


# --- CIFAR-100's superclasses --------------------------------------------------------------
def test_cifar100_exposes_its_superclasses(tmp_path, accept_any_md5):
    import pickle

    write_cifar100(tmp_path, n_train=24, n_test=10)          # too few images to show all 100 classes
    partial = build_dataset("cifar100", root=tmp_path)
    assert partial.coarse_of_fine is None and partial.info["hierarchy"].startswith("none")
    # a test file with every fine class once and a non-trivial superclass map
    rng = np.random.default_rng(0)
    mapping = rng.permutation(np.arange(100) % 20)
    fine = rng.permutation(100).tolist()
    with open(tmp_path / "cifar-100-python" / "test", "wb") as f:
        pickle.dump({"filenames": [f"t{i}.png" for i in range(100)], "batch_label": "test", "fine_labels": fine,
                     "coarse_labels": [int(mapping[c]) for c in fine],
                     "data": rng.integers(0, 256, (100, 3072), dtype=np.uint8)}, f, protocol=2)
    full = build_dataset("cifar100", root=tmp_path)
    assert full.coarse_of_fine == tuple(int(c) for c in mapping) and full.num_coarse == 20
    assert torch.equal(full.coarse_labels(full.test), torch.as_tensor(mapping)[full.test.labels])
