"""Label noise: flip rates, where flips go, seeding, validation, and the saved file that a
teacher and its students share."""
import math
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from common import UserError
from data import load_or_make_noisy_labels, noisy_labels
from data.noise import labels_checksum

N, C = 100_000, 10


def _clean(n=N, c=C, seed=0):
    return torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed))


def test_symmetric_rate_and_uniform_over_other_classes():
    clean = _clean()
    noisy = noisy_labels(clean, C, "symmetric", 0.4, seed=1)
    assert noisy.dtype == torch.int64 and noisy.shape == clean.shape
    flipped = noisy != clean
    # the flip never lands on the same class, so the observed fraction estimates `rate`
    assert abs(flipped.float().mean().item() - 0.4) < 4 * math.sqrt(0.4 * 0.6 / N)
    offsets = (noisy[flipped] - clean[flipped]) % C
    assert offsets.min() >= 1
    observed = torch.bincount(offsets, minlength=C)[1:].double()
    expected = observed.sum() / (C - 1)
    chi2 = ((observed - expected) ** 2 / expected).sum().item()
    assert chi2 < 26.1          # chi-square 99.9% quantile, 8 degrees of freedom
    # per source class too: class 3's flips spread over the 9 others
    dest = torch.bincount(noisy[flipped & (clean == 3)], minlength=C).double()
    assert dest[3] == 0 and (dest[torch.arange(C) != 3] > 0.8 * dest.sum() / (C - 1)).all()


def test_asymmetric_maps_to_next_class():
    clean = _clean()
    noisy = noisy_labels(clean, C, "asymmetric", 0.3, seed=2)
    flipped = noisy != clean
    assert torch.equal(noisy[flipped], (clean[flipped] + 1) % C)
    assert abs(flipped.float().mean().item() - 0.3) < 4 * math.sqrt(0.3 * 0.7 / N)
    assert ((clean == C - 1) & flipped).any() and (noisy[(clean == C - 1) & flipped] == 0).all()


def test_seeded_and_none():
    clean = _clean(5000)
    a = noisy_labels(clean, C, "symmetric", 0.2, seed=5)
    assert torch.equal(a, noisy_labels(clean, C, "symmetric", 0.2, seed=5))
    assert not torch.equal(a, noisy_labels(clean, C, "symmetric", 0.2, seed=6))
    assert torch.equal(noisy_labels(clean, C, "none", 0.0, seed=5), clean)
    assert torch.equal(noisy_labels(clean, C, "asymmetric", 0.0, seed=5), clean)


@pytest.mark.parametrize("kind,rate", [("symmetric", 1.0), ("symmetric", -0.1), ("asymmetric", 1.5),
                                       ("symmetric", float("nan")), ("pairwise", 0.2), ("none", 0.2),
                                       ("symmetric", "0.2")])
def test_invalid_noise_is_user_error(kind, rate):
    with pytest.raises(UserError):
        noisy_labels(_clean(10), C, kind, rate, seed=0)


def test_labels_out_of_range_is_user_error():
    with pytest.raises(UserError):
        noisy_labels(torch.tensor([0, 10]), C, "symmetric", 0.2, seed=0)


def test_load_or_make_reuses_and_detects_mismatch(tmp_path, monkeypatch):
    clean = _clean(2000)
    path = tmp_path / "noise" / "sym0.4.pt"
    made = load_or_make_noisy_labels(path, clean, C, "symmetric", 0.4, seed=3)
    assert path.is_file() and os.listdir(path.parent) == ["sym0.4.pt"]       # no temp file left
    assert torch.equal(made, noisy_labels(clean, C, "symmetric", 0.4, seed=3))

    # reuse: the file is read, nothing is regenerated
    import data.noise as noise_module
    monkeypatch.setattr(noise_module, "noisy_labels", lambda *a, **k: pytest.fail("regenerated"))
    assert torch.equal(load_or_make_noisy_labels(path, clean, C, "symmetric", 0.4, seed=3), made)
    monkeypatch.undo()

    for args, field in [((clean, C, "symmetric", 0.2, 3), "rate"), ((clean, C, "symmetric", 0.4, 4), "seed"),
                        ((clean, C, "asymmetric", 0.4, 3), "kind"),
                        ((torch.roll(clean, 1), C, "symmetric", 0.4, 3), "clean_sha256")]:
        with pytest.raises(UserError, match=field):
            load_or_make_noisy_labels(path, *args)

    path.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot read"):
        load_or_make_noisy_labels(path, clean, C, "symmetric", 0.4, seed=3)


def test_checksum_depends_on_values_not_dtype():
    a = torch.tensor([1, 2, 3])
    assert labels_checksum(a) == labels_checksum(a.int()) != labels_checksum(torch.tensor([1, 2, 4]))


@settings(deadline=None, max_examples=25)
@given(num_classes=st.integers(2, 30), rate=st.floats(0.0, 0.99), seed=st.integers(0, 2**31),
       n=st.integers(0, 300), kind=st.sampled_from(["symmetric", "asymmetric"]))
def test_noise_properties(num_classes, rate, seed, n, kind):
    clean = torch.randint(0, num_classes, (n,), generator=torch.Generator().manual_seed(seed))
    noisy = noisy_labels(clean, num_classes, kind, rate, seed)
    assert noisy.dtype == torch.int64 and noisy.shape == clean.shape
    assert (noisy >= 0).all() and (noisy < num_classes).all()
    flipped = noisy != clean
    if kind == "asymmetric":
        assert torch.equal(noisy[flipped], (clean[flipped] + 1) % num_classes)
    # labels stay put where the (seeded) coin said no: a larger rate only adds flips
    if rate < 0.98:
        more = noisy_labels(clean, num_classes, kind, min(rate + 0.01, 0.99), seed)
        assert ((more != clean) | ~flipped).all()
        if kind == "symmetric":   # same coins, same destinations
            assert torch.equal(more[flipped], noisy[flipped])
