"""Batched augmentations and ArraySplit: exact against torchvision / torch.roll references,
determinism from the generator, view() rebuilding the batch the model saw."""
import pytest
import torch
import torchvision.transforms.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

from common import UserError
from data import ArraySplit, Batch, CropFlip, ShiftNoise

CIFAR_MEAN, CIFAR_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def _images(n, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def _reference_crop_flip(img, dy, dx, flip, pad=4, size=32):
    """torchvision's functional ops one image at a time: pad with 0, crop at (top, left), flip."""
    out = TF.crop(TF.pad(img, [pad], fill=0), dy, dx, size, size)
    return TF.hflip(out) if flip else out


def test_cropflip_has_162_views_matching_torchvision():
    aug = CropFlip(pad=4, size=32)
    assert aug.num_views == 162
    img = _images(1)[0]
    views = torch.arange(162)
    got = aug.apply(img.expand(162, -1, -1, -1), views)
    assert got.dtype == torch.uint8 and got.shape == (162, 3, 32, 32)
    seen = set()
    for v in range(162):
        dy, dx, flip = (int(t) for t in aug.decode(torch.tensor([v])))
        seen.add((dy, dx, flip))
        assert torch.equal(got[v], _reference_crop_flip(img, dy, dx, flip)), v
        assert int(aug.encode(torch.tensor(dy), torch.tensor(dx), torch.tensor(flip))) == v
    assert seen == {(a, b, f) for a in range(9) for b in range(9) for f in (0, 1)}


def test_cropflip_pads_with_zero_pixels():
    aug = CropFlip(pad=4, size=32)
    white = torch.full((2, 3, 32, 32), 255, dtype=torch.uint8)
    corner = aug.encode(torch.tensor([0, 8]), torch.tensor([0, 8]), torch.tensor([0, 1]))
    out = aug.apply(white, corner)
    assert (out[0, :, :4, :].eq(0)).all() and (out[0, :, :, :4].eq(0)).all()
    assert (out[0, :, 4:, 4:].eq(255)).all()
    # bottom-right crop, flipped: the padding ends up at the bottom-left
    assert (out[1, :, -4:, :].eq(0)).all() and (out[1, :, :, :4].eq(0)).all() and (out[1, :, :-4, 4:].eq(255)).all()
    # after normalisation a padded pixel is (0 - mean) / std, as ToTensor + Normalize give
    split = ArraySplit(white, torch.zeros(2, dtype=torch.long), aug, CIFAR_MEAN, CIFAR_STD)
    x = split.view(torch.tensor([0, 1]), corner)
    expect = torch.tensor([(0 - m) / s for m, s in zip(CIFAR_MEAN, CIFAR_STD)])
    assert torch.allclose(x[0, :, 0, 0], expect)


def test_cropflip_rejects_wrong_size_and_view_ids():
    aug = CropFlip(pad=4, size=32)
    with pytest.raises(UserError):
        aug.apply(_images(2, size=28), torch.zeros(2, dtype=torch.long))
    with pytest.raises(UserError):
        aug.apply(_images(2), torch.tensor([0, 162]))


def test_cropflip_sampling_is_deterministic_and_covers_views():
    aug = CropFlip()
    a = aug.sample_views(5000, torch.Generator().manual_seed(3))
    b = aug.sample_views(5000, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == torch.int64
    assert a.min() >= 0 and a.max() < 162 and len(a.unique()) == 162


def _cifar_like_split(n=70, augment=True):
    y = torch.arange(n) % 10
    return ArraySplit(_images(n, seed=1), y, CropFlip() if augment else None, CIFAR_MEAN, CIFAR_STD)


def test_arraysplit_batches_match_torchvision_pipeline():
    split = _cifar_like_split()
    batches = list(split.batches(32, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [len(b.y) for b in batches] == [32, 32, 6]
    index = torch.cat([b.index for b in batches])
    assert sorted(index.tolist()) == list(range(70))
    for b in batches:
        assert isinstance(b, Batch) and b.x.dtype == torch.float32 and b.x.shape[1:] == (3, 32, 32)
        assert torch.equal(b.y, split.labels[b.index])
        for i, v, x in zip(b.index.tolist(), b.views.tolist(), b.x):
            dy, dx, flip = (int(t) for t in split.augment.decode(torch.tensor([v])))
            ref = _reference_crop_flip(split.x[i], dy, dx, flip)
            ref = TF.normalize(TF.convert_image_dtype(ref, torch.float32), CIFAR_MEAN, CIFAR_STD)
            assert torch.allclose(x, ref, atol=1e-6)


def test_arraysplit_same_generator_state_same_batches():
    split = _cifar_like_split()

    def epoch(seed):
        return list(split.batches(16, True, torch.Generator().manual_seed(seed), drop_last=True))

    a, b, c = epoch(7), epoch(7), epoch(8)
    assert len(a) == 4  # 70 // 16 with drop_last
    for p, q in zip(a, b):
        assert all(torch.equal(s, t) for s, t in zip(p, q))
    assert not torch.equal(a[0].index, c[0].index)


def test_arraysplit_view_reproduces_batch_inputs_exactly():
    split = _cifar_like_split()
    for b in split.batches(25, True, torch.Generator().manual_seed(1)):
        assert torch.equal(split.view(b.index, b.views), b.x)


def test_unaugmented_split_is_in_order_with_view_zero():
    split = _cifar_like_split(augment=False)
    b = next(split.batches(10, shuffle=False, generator=None))
    assert torch.equal(b.index, torch.arange(10)) and torch.equal(b.views, torch.zeros(10, dtype=torch.long))
    ref = TF.normalize(split.x[:10].float() / 255, CIFAR_MEAN, CIFAR_STD)
    assert torch.allclose(b.x, ref, atol=1e-6)
    assert torch.equal(split.view(b.index), b.x)
    assert split.num_views == 1


def test_with_labels_shares_pixels_and_checks_length():
    split = _cifar_like_split()
    noisy = (split.labels + 1) % 10
    other = split.with_labels(noisy)
    assert other.x is split.x and torch.equal(other.labels, noisy) and torch.equal(split.labels % 10, split.labels)
    assert not torch.equal(other.labels, split.labels)
    with pytest.raises(UserError):
        split.with_labels(noisy[:5])


def test_shift_equals_torch_roll():
    aug = ShiftNoise(max_shift=4, noise=False)
    assert aug.num_views == 9
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 2, 40, generator=g)
    views = torch.arange(9)
    out = aug.apply(x, views)
    for v in range(9):
        assert torch.equal(out[v], torch.roll(x[v], shifts=v - 4, dims=-1))


def test_noise_std_and_not_enumerable():
    aug = ShiftNoise(max_shift=4, sigma=0.1)
    assert aug.num_views is None
    x = torch.zeros(4096, 1, 40)
    g = torch.Generator().manual_seed(0)
    out = aug.apply(x, aug.sample_views(4096, g), g)
    assert abs(out.std().item() - 0.1) < 0.002 and abs(out.mean().item()) < 0.002
    split = ArraySplit(torch.randn(50, 1, 40), torch.zeros(50, dtype=torch.long), aug)
    b1 = next(split.batches(50, True, torch.Generator().manual_seed(5)))
    b2 = next(split.batches(50, True, torch.Generator().manual_seed(5)))
    assert b1.views is None and torch.equal(b1.x, b2.x)
    with pytest.raises(UserError):
        split.view(b1.index, torch.zeros(50, dtype=torch.long))


def test_shift_only_split_view_roundtrip():
    split = ArraySplit(torch.randn(30, 1, 40), torch.arange(30) % 10, ShiftNoise(noise=False))
    for b in split.batches(8, True, torch.Generator().manual_seed(2)):
        assert b.views is not None and torch.equal(split.view(b.index, b.views), b.x)
        for i, v, x in zip(b.index.tolist(), b.views.tolist(), b.x):
            assert torch.equal(x, torch.roll(split.x[i], v - 4, dims=-1))


@settings(deadline=None, max_examples=15)
@given(pad=st.integers(0, 5), size=st.integers(1, 12), flip=st.booleans(), seed=st.integers(0, 2**31))
def test_cropflip_property_any_geometry(pad, size, flip, seed):
    aug = CropFlip(pad=pad, size=size, flip=flip)
    assert aug.num_views == (2 * pad + 1) ** 2 * (2 if flip else 1)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (6, 2, size, size), generator=g, dtype=torch.uint8)
    views = aug.sample_views(6, g)
    out = aug.apply(x, views)
    dy, dx, fl = aug.decode(views)
    for k in range(6):
        assert torch.equal(out[k], _reference_crop_flip(x[k], int(dy[k]), int(dx[k]), int(fl[k]), pad, size))


@settings(deadline=None, max_examples=15)
@given(max_shift=st.integers(0, 10), length=st.integers(1, 50), seed=st.integers(0, 2**31))
def test_shift_property_any_length(max_shift, length, seed):
    aug = ShiftNoise(max_shift=max_shift, noise=False)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 3, length, generator=g)
    views = aug.sample_views(5, g)
    out = aug.apply(x, views)
    for k in range(5):
        assert torch.equal(out[k], torch.roll(x[k], int(views[k]) - max_shift, dims=-1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_split_matches_cpu_split():
    cpu = _cifar_like_split()
    gpu = _cifar_like_split().to("cuda")
    for a, b in zip(cpu.batches(16, True, torch.Generator().manual_seed(4)),
                    gpu.batches(16, True, torch.Generator().manual_seed(4))):
        assert b.x.is_cuda and torch.equal(a.index, b.index.cpu()) and torch.equal(a.views, b.views.cpu())
        assert torch.allclose(a.x, b.x.cpu(), atol=1e-6)
        assert torch.equal(gpu.view(b.index, b.views), b.x)
    noisy_cpu = ArraySplit(torch.randn(40, 1, 40), torch.zeros(40, dtype=torch.long), ShiftNoise())
    noisy_gpu = ArraySplit(noisy_cpu.x.clone(), torch.zeros(40, dtype=torch.long), ShiftNoise()).to("cuda")
    a = next(noisy_cpu.batches(40, True, torch.Generator().manual_seed(0)))
    b = next(noisy_gpu.batches(40, True, torch.Generator().manual_seed(0)))
    assert torch.allclose(a.x, b.x.cpu(), atol=1e-6)
