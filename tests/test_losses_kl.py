"""Paper-1 losses (ce, kl, mse): slow references, the tau -> inf / tau -> 0 limits, properties."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from losses import build_loss
from losses.kl import kl_div_loss, kl_inf_loss
from losses.mse import mse_logit_loss
from losses.reference import (
    ce_loop_reference,
    kl_inf_loop_reference,
    kl_inf_official_grad,
    kl_loop_reference,
    mse_loop_reference,
)
from loss_helpers import F64, logits, targets_for, value_and_grads


@pytest.mark.parametrize("tau", [0.5, 1.0, 4.0, 20.0])
def test_kl_matches_loop_reference_values_and_grads(tau):
    zs, zt, y = logits(5, 7, seed=1), logits(5, 7, seed=2), targets_for(5, 7)
    loss = build_loss("kl", tau=tau)
    v, gs, gt = value_and_grads(lambda a, b: loss(a, b, y), zs, zt)
    rv, rgs, rgt = value_and_grads(lambda a, b: kl_loop_reference(a, b, tau), zs, zt)
    assert v.dtype == F64
    torch.testing.assert_close(v, rv, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gs, rgs, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gt, rgt, rtol=1e-9, atol=1e-12)


def test_kl_student_gradient_is_tau_times_prob_difference():
    tau, zs, zt = 3.0, logits(4, 6, seed=3), logits(4, 6, seed=4)
    _, gs, _ = value_and_grads(lambda a, b: kl_div_loss(a, b, tau), zs, zt)
    expected = tau * (F.softmax(zs / tau, 1) - F.softmax(zt / tau, 1)) / zs.shape[0]
    torch.testing.assert_close(gs, expected, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.9])
def test_kl_alpha_mixes_cross_entropy(alpha):
    zs, zt, y = logits(6, 5, seed=5), logits(6, 5, seed=6), targets_for(6, 5, seed=1)
    loss = build_loss("kl", tau=2.0, alpha=alpha)
    fn = lambda a, b: loss(a, b, y)  # noqa: E731
    ref = lambda a, b: alpha * kl_loop_reference(a, b, 2.0) + (1 - alpha) * ce_loop_reference(a, y)  # noqa: E731
    v, gs, _ = value_and_grads(fn, zs, zt)
    rv, rgs, _ = value_and_grads(ref, zs, zt)
    torch.testing.assert_close(v, rv, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gs, rgs, rtol=1e-9, atol=1e-12)
    assert set(loss.terms) == {"kd", "ce"}


def test_kl_inf_matches_reference_and_official_injected_gradient():
    zs, zt, y = logits(6, 9, seed=7), logits(6, 9, seed=8), targets_for(6, 9)
    loss = build_loss("kl", tau=math.inf)
    v, gs, _ = value_and_grads(lambda a, b: loss(a, b, y), zs, zt)
    rv, _, _ = value_and_grads(kl_inf_loop_reference, zs, zt)
    torch.testing.assert_close(v, rv, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gs, kl_inf_official_grad(zs, zt), rtol=1e-10, atol=1e-13)


def test_large_tau_gradient_approaches_inf_limit():
    zs, zt = logits(5, 10, seed=9), logits(5, 10, seed=10)
    _, g_inf, _ = value_and_grads(kl_inf_loss, zs, zt)
    errors = []
    for tau in (1e1, 1e2, 1e4):
        _, g, _ = value_and_grads(lambda a, b: kl_div_loss(a, b, tau), zs, zt)
        errors.append((g - g_inf).abs().max().item() / g_inf.abs().max().item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3
    assert errors[0] > 1e-2  # the limit is not reached at tau = 10: the check has power


def distinct_logits(batch, classes, seed):
    """Logits whose arg-max has a margin >= 0.8 (a shuffled 0..C-1 plus small noise)."""
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randperm(classes, generator=g).to(F64) for _ in range(batch)]
    return torch.stack(rows) + 0.1 * torch.rand(batch, classes, generator=g, dtype=F64)


def test_small_tau_gradient_becomes_label_matching():
    batch, classes, tau = 6, 8, 0.01
    zs, zt = distinct_logits(batch, classes, 11), distinct_logits(batch, classes, 12)
    onehot_s = F.one_hot(zs.argmax(1), classes).to(F64)
    onehot_t = F.one_hot(zt.argmax(1), classes).to(F64)
    assert not torch.equal(onehot_s, onehot_t)
    y = targets_for(batch, classes)
    _, g, _ = value_and_grads(lambda a, b: build_loss("kl", tau=tau)(a, b, y), zs, zt)
    # gradient * B / tau = p_s - p_t  ->  p_s - onehot(argmax z_t)  ->  onehot(argmax z_s) - onehot(argmax z_t)
    scaled = g * batch / tau
    torch.testing.assert_close(scaled, F.softmax(zs / tau, 1) - onehot_t, rtol=0, atol=1e-12)
    torch.testing.assert_close(scaled, onehot_s - onehot_t, rtol=0, atol=1e-12)
    # at a moderate tau the pattern is visibly not one-hot
    _, g1, _ = value_and_grads(lambda a, b: build_loss("kl", tau=1.0)(a, b, y), zs, zt)
    assert (g1 * batch - (onehot_s - onehot_t)).abs().max() > 0.05


def test_rescale_small_tau_divides_by_tau_only_below_one():
    zs, zt, y = logits(4, 6, seed=13), logits(4, 6, seed=14), targets_for(4, 6)
    for tau in (0.05, 0.5, 1.0):
        plain = build_loss("kl", tau=tau)(zs, zt, y)
        rescaled = build_loss("kl", tau=tau, rescale_small_tau=True)(zs, zt, y)
        torch.testing.assert_close(rescaled, plain / tau, rtol=1e-12, atol=0)
    for tau in (1.5, 4.0, math.inf):
        plain = build_loss("kl", tau=tau)(zs, zt, y)
        assert torch.equal(build_loss("kl", tau=tau, rescale_small_tau=True)(zs, zt, y), plain)
    # rescaled gradient at tiny tau: (onehot_s - onehot_t) / B directly
    zs, zt, y = distinct_logits(5, 7, 15), distinct_logits(5, 7, 16), targets_for(5, 7)
    _, g, _ = value_and_grads(lambda a, b: build_loss("kl", tau=0.01, rescale_small_tau=True)(a, b, y), zs, zt)
    expected = (F.one_hot(zs.argmax(1), 7) - F.one_hot(zt.argmax(1), 7)).to(F64) / 5
    torch.testing.assert_close(g, expected, rtol=0, atol=1e-12)


def test_ce_matches_reference_and_ignores_teacher():
    zs, y = logits(7, 11, seed=17), targets_for(7, 11, seed=3)
    loss = build_loss("ce")
    assert loss.uses_teacher is False
    v, gs, _ = value_and_grads(lambda a, b: loss(a, None, y), zs, zs)
    rv, rgs, _ = value_and_grads(lambda a, b: ce_loop_reference(a, y), zs, zs)
    torch.testing.assert_close(v, rv, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gs, rgs, rtol=1e-9, atol=1e-12)
    assert torch.equal(loss(zs, logits(7, 11, seed=99), y), loss(zs, None, y))


@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_mse_matches_reference(alpha):
    zs, zt, y = logits(4, 9, seed=18), logits(4, 9, seed=19), targets_for(4, 9)
    loss = build_loss("mse", alpha=alpha)
    v, gs, gt = value_and_grads(lambda a, b: loss(a, b, y), zs, zt)
    ref = lambda a, b: alpha * mse_loop_reference(a, b) + (1 - alpha) * ce_loop_reference(a, y)  # noqa: E731
    rv, rgs, rgt = value_and_grads(ref, zs, zt)
    torch.testing.assert_close(v, rv, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gs, rgs, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gt, rgt, rtol=1e-9, atol=1e-12)
    # nn.MSELoss (mean over all B*C), what the official code calls
    if alpha == 1.0:
        torch.testing.assert_close(v, F.mse_loss(zs, zt), rtol=1e-12, atol=0)


# --------------------------------------------------------------- properties
shapes = st.tuples(st.integers(1, 8), st.integers(2, 50))
taus = st.one_of(st.floats(0.05, 100.0), st.just(math.inf))
scales = st.floats(0.01, 100.0)
seeds = st.integers(0, 2**31 - 1)


def pair(shape, scale, seed):
    g = torch.Generator().manual_seed(seed)
    zs = scale * torch.randn(*shape, generator=g, dtype=F64)
    zt = scale * torch.randn(*shape, generator=g, dtype=F64)
    return zs, zt


@settings(deadline=None, max_examples=50)
@given(shape=shapes, tau=taus, scale=scales, seed=seeds)
def test_property_kl_nonnegative_and_zero_on_equal_logits(shape, tau, scale, seed):
    zs, zt = pair(shape, scale, seed)
    y = torch.zeros(shape[0], dtype=torch.long)
    loss = build_loss("kl", tau=tau)
    value = loss(zs, zt, y)
    assert torch.isfinite(value)
    assert value >= -1e-12 * max(1.0, scale) ** 2
    assert loss(zt, zt, y).item() == 0.0


@settings(deadline=None, max_examples=30)
@given(shape=shapes, tau=st.floats(0.2, 50.0), scale=st.floats(0.01, 10.0), seed=seeds)
def test_property_kl_matches_loop_reference(shape, tau, scale, seed):
    zs, zt = pair(shape, scale, seed)
    torch.testing.assert_close(kl_div_loss(zs, zt, tau), kl_loop_reference(zs, zt, tau), rtol=1e-8, atol=1e-10)


@settings(deadline=None, max_examples=50)
@given(shape=shapes, scale=scales, seed=seeds, shift=st.floats(-1e3, 1e3))
def test_property_inf_limit_invariant_to_per_sample_shift(shape, scale, seed, shift):
    zs, zt = pair(shape, scale, seed)
    offsets = shift * torch.linspace(-1, 1, shape[0], dtype=F64).unsqueeze(1)
    base = kl_inf_loss(zs, zt)
    torch.testing.assert_close(kl_inf_loss(zs + offsets, zt), base, rtol=1e-7, atol=1e-9 * (1 + abs(shift)) ** 2)
    torch.testing.assert_close(kl_inf_loss(zs, zt - offsets), base, rtol=1e-7, atol=1e-9 * (1 + abs(shift)) ** 2)


@settings(deadline=None, max_examples=50)
@given(shape=shapes, scale=scales, seed=seeds)
def test_property_inf_limit_is_half_mse_of_centred_logits(shape, scale, seed):
    zs, zt = pair(shape, scale, seed)
    centre = lambda z: z - z.mean(dim=1, keepdim=True)  # noqa: E731
    torch.testing.assert_close(kl_inf_loss(zs, zt), 0.5 * mse_logit_loss(centre(zs), centre(zt)), rtol=1e-10, atol=0)
    # and it never exceeds half the plain MSE (centring removes the mean mismatch)
    assert kl_inf_loss(zs, zt) <= 0.5 * mse_logit_loss(zs, zt) * (1 + 1e-12)
