"""DKD (Zhao et al. 2022): loop reference, the KD = TCKD + (1 - p_t) NCKD identity, properties."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from losses import build_loss
from losses.dkd import dkd_parts
from losses.kl import kl_div_loss
from losses.reference import dkd_loop_reference
from loss_helpers import F64, logits, targets_for, value_and_grads


@pytest.mark.parametrize("tau,alpha,beta,classes", [(4.0, 1.0, 8.0, 10), (1.0, 0.5, 0.5, 6), (2.0, 2.0, 0.0, 2)])
def test_dkd_matches_loop_reference(tau, alpha, beta, classes):
    zs, zt, y = logits(5, classes, seed=1), logits(5, classes, seed=2), targets_for(5, classes, 3)
    loss = build_loss("dkd", tau=tau, alpha=alpha, beta=beta)
    v, gs, gt = value_and_grads(lambda a, b: loss(a, b, y), zs, zt)
    rv, rgs, rgt = value_and_grads(lambda a, b: dkd_loop_reference(a, b, y, tau, alpha, beta), zs, zt)
    torch.testing.assert_close(v, rv, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gs, rgs, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(gt, rgt, rtol=1e-8, atol=1e-12)
    assert set(loss.terms) == {"tckd", "nckd"}


@pytest.mark.parametrize("tau", [0.5, 1.0, 4.0, 10.0])
@pytest.mark.parametrize("classes", [2, 3, 17])
def test_kd_equals_tckd_plus_weighted_nckd_per_sample(tau, classes):
    zs, zt, y = logits(7, classes, seed=4), logits(7, classes, seed=5), targets_for(7, classes, 6)
    tckd, nckd, pt_teacher = dkd_parts(zs, zt, y, tau)
    kd = kl_div_loss(zs, zt, tau, reduction="none")
    torch.testing.assert_close(kd, tckd + (1 - pt_teacher) * nckd, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(pt_teacher, torch.softmax(zt / tau, 1).gather(1, y[:, None]).squeeze(1))
    assert (nckd > 0).all() if classes > 2 else torch.allclose(nckd, torch.zeros_like(nckd), atol=1e-12)


def test_dkd_loss_reduces_to_kd_with_alpha_one_and_beta_one_minus_teacher_target_prob():
    tau, classes = 4.0, 9
    zs, zt, y = logits(4, classes, seed=7), logits(4, classes, seed=8), targets_for(4, classes, 9)
    pt_teacher = torch.softmax(zt / tau, 1).gather(1, y[:, None]).squeeze(1)
    kd = build_loss("kl", tau=tau)
    for b in range(4):  # one sample a batch so that beta can be that sample's 1 - p_t
        sl = slice(b, b + 1)
        dkd = build_loss("dkd", alpha=1.0, beta=1.0 - pt_teacher[b].item(), tau=tau)
        v, g, _ = value_and_grads(lambda a, c: dkd(a, c, y[sl]), zs[sl], zt[sl])
        rv, rg, _ = value_and_grads(lambda a, c: kd(a, c, y[sl]), zs[sl], zt[sl])
        torch.testing.assert_close(v, rv, rtol=1e-10, atol=1e-12)
        # p_t^T depends on the teacher only, so the student gradients agree as well
        torch.testing.assert_close(g, rg, rtol=1e-9, atol=1e-12)


def test_dkd_finite_where_a_fixed_mask_offset_would_fail():
    # logits / tau differing by more than 1000 (mdistiller's mask offset): still exact and finite
    zs = torch.tensor([[5000.0, 0.0, -4000.0], [0.0, 3000.0, 10.0]], dtype=F64, requires_grad=True)
    zt = torch.tensor([[4000.0, 100.0, -5000.0], [1.0, 2000.0, 12.0]], dtype=F64)
    y = torch.tensor([1, 1])
    loss = build_loss("dkd", tau=1.0, alpha=1.0, beta=1.0)
    v = loss(zs, zt, y)
    v.backward()
    assert torch.isfinite(v) and torch.isfinite(zs.grad).all()
    # sample 0 non-target classes {0, 2}: teacher and student put all mass on class 0 -> NCKD ~ 0
    _, nckd, _ = dkd_parts(zs.detach(), zt, y, 1.0)
    assert nckd[0].abs() < 1e-12
    # sample 1 non-target {0, 2}: log-odds 10 vs 11 -> NCKD = KL(Bern(s(11)) || Bern(s(10)))
    p, q = torch.sigmoid(torch.tensor(11.0, dtype=F64)), torch.sigmoid(torch.tensor(10.0, dtype=F64))
    expected = p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))
    torch.testing.assert_close(nckd[1], expected, rtol=1e-9, atol=1e-15)


@settings(deadline=None, max_examples=50)
@given(shape=st.tuples(st.integers(1, 8), st.integers(2, 50)), tau=st.floats(0.1, 50.0),
       scale=st.floats(0.01, 100.0), seed=st.integers(0, 2**31 - 1))
def test_property_dkd_nonnegative_zero_on_equal_and_identity(shape, tau, scale, seed):
    g = torch.Generator().manual_seed(seed)
    zs = scale * torch.randn(*shape, generator=g, dtype=F64)
    zt = scale * torch.randn(*shape, generator=g, dtype=F64)
    y = torch.randint(0, shape[1], (shape[0],), generator=g)
    tckd, nckd, pt = dkd_parts(zs, zt, y, tau)
    tol = 1e-9 * (1 + scale) ** 2
    assert (tckd >= -tol).all() and (nckd >= -tol).all()
    kd = kl_div_loss(zs, zt, tau, reduction="none")
    torch.testing.assert_close(kd, tckd + (1 - pt) * nckd, rtol=1e-7, atol=tol)
    t0, n0, _ = dkd_parts(zt, zt, y, tau)
    assert (t0 == 0).all() and (n0 == 0).all()
