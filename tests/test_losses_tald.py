"""TALD (paper 3): noise law and scale, schedules, seeding, exact resume, forwarding to the base."""
import io
import math

import pytest
import torch

from common import UserError
from losses import build_loss
from loss_helpers import logits, targets_for


@pytest.mark.parametrize("base,hp", [("kl", {"tau": 4.0}), ("kl", {"tau": math.inf}), ("mse", {}),
                                     ("dkl", {"tau": 2.0}), ("ikl", {"alpha": 4.0}), ("dkd", {})])
def test_scale_zero_equals_base_exactly(base, hp):
    zs, zt, y = logits(5, 7, seed=1), logits(5, 7, seed=2), targets_for(5, 7)
    tald = build_loss("tald", base=base, scale=0.0, **hp)
    plain = build_loss(base, **hp)
    a = zs.clone().requires_grad_(True)
    b = zs.clone().requires_grad_(True)
    va, vb = tald(a, zt, y), plain(b, zt, y)
    va.backward()
    vb.backward()
    assert torch.equal(va, vb)
    assert torch.equal(a.grad, b.grad)


def test_loss_is_base_on_noisy_teacher_from_the_same_stream():
    zs, zt, y = logits(6, 9, seed=3), logits(6, 9, seed=4), targets_for(6, 9)
    tald = build_loss("tald", base="kl", tau=2.0, scale=0.5, seed=7)
    twin = build_loss("tald", base="kl", tau=2.0, scale=0.5, seed=7)
    base = build_loss("kl", tau=2.0)
    for _ in range(3):
        eps = twin.sample_noise(zt)
        assert eps.abs().max() > 0
        assert torch.equal(tald(zs, zt, y), base(zs, zt + eps, y))
    assert not torch.equal(tald(zs, zt, y), base(zs, zt, y))


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
@pytest.mark.parametrize("scale", [0.3, 2.0])
def test_absolute_noise_has_the_requested_std_and_law(noise, scale):
    tald = build_loss("tald", noise=noise, scale=scale, scale_mode="absolute", seed=1)
    zt = logits(4000, 50, seed=5, dtype=torch.float32)
    eps = tald.sample_noise(zt)
    assert eps.shape == zt.shape and eps.dtype == torch.float32
    n = eps.numel()
    torch.testing.assert_close(eps.std().item(), scale, rtol=0.01, atol=0)  # 200k draws: ~0.2 % sd
    assert abs(eps.mean().item()) < 5 * scale / math.sqrt(n)
    bound = math.sqrt(3) * scale
    if noise == "uniform":
        assert eps.abs().max() <= bound * (1 + 1e-6)
        assert eps.abs().max() > 0.99 * bound
    else:
        tail = (eps.abs() > bound).float().mean().item()  # P(|N(0,1)| > sqrt 3) = 0.0833
        assert abs(tail - 0.0833) < 0.005


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_relative_noise_scales_with_each_samples_teacher_std(noise):
    batch, classes, scale = 8, 20000, 0.25
    factors = torch.tensor([0.1, 0.5, 1, 2, 5, 10, 50, 100], dtype=torch.float32)
    zt = logits(batch, classes, scale=1.0, seed=6, dtype=torch.float32) * factors[:, None] + 3.0
    tald = build_loss("tald", noise=noise, scale=scale, scale_mode="relative", seed=2)
    eps = tald.sample_noise(zt)
    ratio = eps.std(dim=1) / zt.std(dim=1, correction=0)
    torch.testing.assert_close(ratio, torch.full((batch,), scale), rtol=0.03, atol=0)


@pytest.mark.parametrize("schedule,expected", [("constant", (1.0, 1.0, 1.0)), ("linear", (1.0, 0.5, 0.0)),
                                               ("cosine", (1.0, 0.5, 0.0))])
def test_schedules_give_the_right_scale(schedule, expected):
    scale = 1.5
    tald = build_loss("tald", scale=scale, scale_mode="absolute", schedule=schedule, seed=3)
    zt = logits(2000, 50, seed=7, dtype=torch.float32)
    for p, factor in zip((0.0, 0.5, 1.0), expected):
        tald.set_progress(p)
        assert tald.current_scale() == pytest.approx(scale * factor, abs=1e-12)
        eps = tald.sample_noise(zt)
        assert eps.std().item() == pytest.approx(scale * factor, rel=0.02, abs=1e-12)
        assert tald.base.progress == p  # forwarded
    if schedule == "cosine":
        tald.set_progress(0.25)
        assert tald.current_scale() == pytest.approx(scale * (1 + math.cos(math.pi / 4)) / 2)


def test_same_seed_same_noise_different_seed_different_noise():
    zt = logits(16, 10, seed=8)
    a, b, c = (build_loss("tald", noise="uniform", scale=1.0, seed=s) for s in (11, 11, 12))
    for _ in range(3):
        na, nb, nc = a.sample_noise(zt), b.sample_noise(zt), c.sample_noise(zt)
        assert torch.equal(na, nb)
        assert not torch.allclose(na, nc)
    # successive draws differ
    assert not torch.equal(a.sample_noise(zt), a.sample_noise(zt))


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_state_dict_round_trip_reproduces_the_next_draw(noise):
    zs, zt, y = logits(8, 6, seed=9), logits(8, 6, seed=10), targets_for(8, 6)
    a = build_loss("tald", noise=noise, scale=0.7, schedule="linear", seed=5)
    a.set_progress(0.3)
    for _ in range(4):
        a(zs, zt, y)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = build_loss("tald", noise=noise, scale=0.7, schedule="linear", seed=99)  # seed is overridden by the state
    b.load_state_dict(torch.load(buf))
    assert b.progress == pytest.approx(0.3)
    for _ in range(3):
        assert torch.equal(a(zs, zt, y), b(zs, zt, y))
    # a state taken before any draw restarts the stream from the seed
    fresh = build_loss("tald", noise=noise, scale=0.7, seed=5)
    state = fresh.state_dict()
    assert state["rng"] is None
    other = build_loss("tald", noise=noise, scale=0.7, seed=5)
    other.sample_noise(zt)
    other.load_state_dict(state)
    assert torch.equal(other.sample_noise(zt), fresh.sample_noise(zt))


def test_hooks_and_state_forward_to_the_base():
    classes = 5
    tald = build_loss("tald", base="ikl", class_prior=True, T2=1.0, scale=0.2)
    assert tald.uses_teacher and tald.base.class_prior
    zt, y = logits(10, classes, seed=11), targets_for(10, classes, 12)
    tald.observe_teacher(zt, y)
    tald.end_epoch()
    assert tald.base.prior is not None
    seen = torch.unique(y)
    expected = torch.stack([torch.softmax(zt[y == c], 1).mean(0) for c in seen])
    torch.testing.assert_close(tald.base.prior[seen].double(), expected, rtol=1e-6, atol=1e-7)
    state = tald.state_dict()
    assert torch.equal(state["base"]["prior"], tald.base.prior.cpu())
    other = build_loss("tald", base="ikl", class_prior=True, T2=1.0, scale=0.2)
    other.load_state_dict(state)
    assert torch.equal(other.base.prior, tald.base.prior)


def test_base_hyperparameters_are_checked_and_recorded():
    tald = build_loss("tald", base="kl", tau=3.0, alpha=0.5)
    assert tald.base.tau == 3.0 and tald.base.alpha == 0.5
    assert tald.hparams["tau"] == 3.0 and tald.hparams["base"] == "kl"
    assert build_loss("tald", **tald.hparams).hparams == tald.hparams  # the record rebuilds the loss
    with pytest.raises(UserError, match="T2"):
        build_loss("tald", base="kl", T2=1.0)
    with pytest.raises(UserError, match="tau"):
        build_loss("tald", base="kl", tau=-1.0)
    with pytest.raises(UserError, match="known|one of"):
        build_loss("tald", base="nope")


def test_base_without_teacher_takes_none():
    zs, y = logits(4, 5, seed=13), targets_for(4, 5)
    tald = build_loss("tald", base="ce", scale=1.0)
    assert tald.uses_teacher is False
    assert torch.equal(tald(zs, None, y), build_loss("ce")(zs, None, y))


# --- the published relatives: multiplicative noise on a share of batches, TeKAP's mixture ---------------
def test_multiplicative_noise_is_proportional_to_each_logit():
    tald = build_loss("tald", noise="multiplicative", scale=0.3, seed=2)
    zt = logits(3000, 40, seed=6, dtype=torch.float32)
    eps = tald.sample_noise(zt)
    ratio = eps / zt                                  # = 0.3 n, n ~ N(0, 1) per logit
    torch.testing.assert_close(ratio.std().item(), 0.3, rtol=0.01, atol=0)
    assert abs(ratio.mean().item()) < 5 * 0.3 / math.sqrt(ratio.numel())
    assert torch.equal(tald.sample_noise(torch.zeros(4, 40)), torch.zeros(4, 40))   # zero logits stay zero


@pytest.mark.parametrize("mode", ["absolute", "relative"])
def test_mixture_is_tekaps_synthetic_teacher(mode):
    """(1 - s) z_t + s n with n ~ N(0, 1) (absolute: TeKAP's 0.9 z + 0.1 n at s = 0.1) or N(0, std(z_t)^2)."""
    zt = logits(3000, 40, seed=7, dtype=torch.float32)
    tald = build_loss("tald", noise="mixture", scale=0.1, scale_mode=mode, seed=3)
    twin = build_loss("tald", noise="gaussian", scale=1.0, scale_mode="absolute", seed=3)   # the same draws
    noisy = zt + tald.sample_noise(zt)
    n = twin.sample_noise(zt) * (zt.std(dim=1, correction=0, keepdim=True) if mode == "relative" else 1.0)
    torch.testing.assert_close(noisy, 0.9 * zt + 0.1 * n, rtol=1e-5, atol=1e-5)


def test_share_perturbs_that_fraction_of_batches_and_resumes_exactly():
    zt = logits(8, 10, seed=8, dtype=torch.float32)
    tald = build_loss("tald", scale=0.5, share=0.3, seed=4)
    hits = [bool(tald.sample_noise(zt).abs().sum() > 0) for _ in range(2000)]
    assert abs(sum(hits) / len(hits) - 0.3) < 0.04            # binomial sd ~0.01
    state = tald.state_dict()
    twin = build_loss("tald", scale=0.5, share=0.3, seed=4)
    twin.load_state_dict(state)
    for _ in range(20):
        assert torch.equal(tald.sample_noise(zt), twin.sample_noise(zt))


def test_labels_name_the_law_and_the_base():
    assert build_loss("tald", noise="multiplicative", scale=0.5, share=0.5).label() == \
        "TALD noise=multiplicative scale=0.5 share=0.5 on KL tau=4"
