"""Paper-2 losses (dkl, ikl): pairwise references, Theorem 1, asymmetry, class prior, GKL."""
import io
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from losses import build_loss
from losses.dkl import dkl_loss, pair_weighted_sq
from losses.reference import class_prior_reference, dkl_pairwise_reference, ikl_pairwise_reference
from loss_helpers import F64, logits, targets_for, value_and_grads


def random_prior(classes, seed):
    g = torch.Generator().manual_seed(seed)
    return F.softmax(2 * torch.randn(classes, classes, generator=g, dtype=F64), dim=1)


# ----------------------------------------------------------------------- dkl
@pytest.mark.parametrize("tau,alpha,beta", [(1.0, 1.0, 1.0), (4.0, 2.0, 0.5), (0.5, 0.0, 3.0)])
def test_dkl_matches_pairwise_reference(tau, alpha, beta):
    zs, zt, y = logits(5, 8, seed=1), logits(5, 8, seed=2), targets_for(5, 8)
    loss = build_loss("dkl", tau=tau, alpha=alpha, beta=beta)
    v, gs, gt = value_and_grads(lambda a, b: loss(a, b, y), zs, zt)
    rv, rgs, rgt = value_and_grads(lambda a, b: dkl_pairwise_reference(a, b, tau, alpha, beta), zs, zt)
    torch.testing.assert_close(v, rv, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gs, rgs, rtol=1e-9, atol=1e-12)
    if alpha > 0:
        torch.testing.assert_close(gt, rgt, rtol=1e-9, atol=1e-12)
    assert set(loss.terms) == {"wmse", "soft_ce"}


@pytest.mark.parametrize("tau", [0.5, 1.0, 4.0, 20.0])
def test_theorem1_dkl_gradients_equal_kl_gradients(tau):
    zs, zt, y = logits(6, 10, seed=3), logits(6, 10, seed=4), targets_for(6, 10)
    dkl = build_loss("dkl", alpha=1.0, beta=1.0, tau=tau)
    kl = build_loss("kl", tau=tau)
    v_d, gs_d, gt_d = value_and_grads(lambda a, b: dkl(a, b, y), zs, zt)
    v_k, gs_k, gt_k = value_and_grads(lambda a, b: kl(a, b, y), zs, zt)
    torch.testing.assert_close(gs_d, gs_k, rtol=1e-9, atol=1e-13)  # student side: the soft CE
    torch.testing.assert_close(gt_d, gt_k, rtol=1e-9, atol=1e-13)  # teacher side: the wMSE
    assert not torch.allclose(v_d, v_k)  # the values differ: only the gradients are equal


def test_dkl_wmse_gives_no_student_gradient_but_has_a_value():
    zs, zt, y = logits(4, 6, seed=5), logits(4, 6, seed=6), targets_for(4, 6)
    fn = lambda alpha: lambda a, b: build_loss("dkl", alpha=alpha, beta=1.0, tau=2.0)(a, b, y)  # noqa: E731
    v0, g0, _ = value_and_grads(fn(0.0), zs, zt)
    v5, g5, _ = value_and_grads(fn(5.0), zs, zt)
    assert torch.equal(g0, g5)
    assert v5 > v0
    loss = build_loss("dkl", tau=2.0)
    loss(zs, zt, y)
    assert loss.terms["wmse"] > 0


def brute_pair_sum(a, v):
    batch, classes = a.shape
    out = torch.zeros(batch, dtype=a.dtype)
    for b in range(batch):
        for j in range(classes):
            for k in range(classes):
                out[b] += v[b, j] * v[b, k] * (a[b, j] - a[b, k]) ** 2
    return out


@settings(deadline=None, max_examples=30)
@given(batch=st.integers(1, 4), classes=st.integers(2, 12), seed=st.integers(0, 2**31 - 1), normalised=st.booleans())
def test_property_pair_identity_matches_double_loop(batch, classes, seed, normalised):
    g = torch.Generator().manual_seed(seed)
    a = 5 * torch.randn(batch, classes, generator=g, dtype=F64)
    v = torch.rand(batch, classes, generator=g, dtype=F64)
    if normalised:
        v = v / v.sum(1, keepdim=True)
    torch.testing.assert_close(pair_weighted_sq(a, v), brute_pair_sum(a, v), rtol=1e-10, atol=1e-12)


@settings(deadline=None, max_examples=40)
@given(
    shape=st.tuples(st.integers(1, 8), st.integers(2, 50)),
    tau=st.floats(0.2, 50.0),
    scale=st.floats(0.01, 30.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_dkl_linear_form_matches_pairwise(shape, tau, scale, seed):
    g = torch.Generator().manual_seed(seed)
    zs = scale * torch.randn(*shape, generator=g, dtype=F64)
    zt = scale * torch.randn(*shape, generator=g, dtype=F64)
    torch.testing.assert_close(dkl_loss(zs, zt, tau, 1.3, 0.7), dkl_pairwise_reference(zs, zt, tau, 1.3, 0.7),
                               rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------- ikl
@pytest.mark.parametrize("break_asymmetry", [True, False])
@pytest.mark.parametrize("use_prior", [False, True])
@pytest.mark.parametrize("gamma", [None, 0.2, 1.0])
def test_ikl_matches_official_pairwise_computation(break_asymmetry, use_prior, gamma):
    batch, classes = 6, 9
    zs, zt, y = logits(batch, classes, seed=7), logits(batch, classes, seed=8), targets_for(batch, classes, 2)
    prior = random_prior(classes, 3).float().double() if use_prior else None  # the loss keeps it in float32
    hp = dict(alpha=8.0, beta=1.5, tau=4.0, T2=3.0, break_asymmetry=break_asymmetry, class_prior=use_prior, gamma=gamma)
    loss = build_loss("ikl", **hp)
    if use_prior:
        loss.load_state_dict({"prior": prior, "accumulator": None})
    v, gs, gt = value_and_grads(lambda a, b: loss(a, b, y), zs, zt)
    ref = lambda a, b: ikl_pairwise_reference(  # noqa: E731
        a, b, y, tau=4.0, T2=3.0, alpha=8.0, beta=1.5, prior=prior, gamma=gamma, break_asymmetry=break_asymmetry)
    rv, rgs, _ = value_and_grads(ref, zs, zt)
    torch.testing.assert_close(v, rv, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gs, rgs, rtol=1e-9, atol=1e-12)
    assert gt is None  # the teacher is detached (official: teacher under no_grad)


def test_ikl_gamma_one_equals_plain_ikl():
    zs, zt, y = logits(5, 7, seed=9), logits(5, 7, seed=10), targets_for(5, 7)
    a = build_loss("ikl", T2=2.0)(zs, zt, y)
    b = build_loss("ikl", T2=2.0, gamma=1.0)(zs, zt, y)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    c = build_loss("ikl", T2=2.0, gamma=0.3)(zs, zt, y)
    assert not torch.allclose(a, c)


def test_break_asymmetry_adds_the_wmse_student_gradient():
    batch, classes, alpha, T2 = 5, 8, 3.0, 2.0
    zs, zt, y = logits(batch, classes, seed=11), logits(batch, classes, seed=12), targets_for(batch, classes)
    hp = dict(alpha=alpha, beta=1.0, tau=4.0, T2=T2)
    _, g_ba, _ = value_and_grads(lambda a, b: build_loss("ikl", break_asymmetry=True, **hp)(a, b, y), zs, zt)
    _, g_no, _ = value_and_grads(lambda a, b: build_loss("ikl", break_asymmetry=False, **hp)(a, b, y), zs, zt)
    assert (g_ba - g_no).abs().max() > 1e-3
    w = F.softmax(zt / T2, dim=1)
    d = zs - zt
    expected = alpha * w * (d - (w * d).sum(1, keepdim=True)) / batch
    torch.testing.assert_close(g_ba - g_no, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_ikl_without_its_changes_is_dkl_in_the_official_factor_convention(tau):
    zs, zt, y = logits(6, 7, seed=13), logits(6, 7, seed=14), targets_for(6, 7)
    ikl = build_loss("ikl", alpha=2.0, beta=3.0, tau=tau, T2=tau, break_asymmetry=False, class_prior=False)
    dkl = build_loss("dkl", alpha=2.0, beta=3.0 / tau**2, tau=tau)
    vi, gi, _ = value_and_grads(lambda a, b: ikl(a, b, y), zs, zt)
    vd, gd, _ = value_and_grads(lambda a, b: dkl(a, b, y), zs, zt)
    torch.testing.assert_close(vi, vd, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gi, gd, rtol=1e-9, atol=1e-13)


def test_ikl_class_prior_uniform_start_accumulation_and_next_epoch():
    classes, T2 = 6, 2.0
    loss = build_loss("ikl", class_prior=True, T2=T2, alpha=4.0)
    zs, zt, y = logits(5, classes, seed=15), logits(5, classes, seed=16), targets_for(5, classes, 4)
    uniform = torch.full((classes, classes), 1.0 / classes, dtype=F64)
    # epoch 1: uniform weights, whatever is observed during the epoch
    before = loss(zs, zt, y)
    torch.testing.assert_close(before, ikl_pairwise_reference(zs, zt, y, 4.0, T2, 4.0, 1.0, prior=uniform))
    batches = [logits(7, classes, seed=20 + i) for i in range(3)]
    labels = [torch.randint(0, classes - 1, (7,), generator=torch.Generator().manual_seed(30 + i)) for i in range(3)]
    for zb, yb in zip(batches, labels):  # class C-1 never appears
        loss.observe_teacher(zb, yb)
    torch.testing.assert_close(loss(zs, zt, y), before, rtol=0, atol=0)  # not used before end_epoch
    loss.end_epoch()
    rows = class_prior_reference(batches, labels, classes, T2)
    for c, row in enumerate(rows):
        expected = uniform[c] if row is None else row
        torch.testing.assert_close(loss.prior[c].double(), expected, rtol=1e-6, atol=1e-7)
    assert rows[classes - 1] is None
    torch.testing.assert_close(loss.prior.sum(1).double(), torch.ones(classes, dtype=F64), rtol=0, atol=1e-6)
    prior1 = loss.prior.clone()
    torch.testing.assert_close(loss(zs, zt, y), ikl_pairwise_reference(zs, zt, y, 4.0, T2, 4.0, 1.0, prior=prior1.double()),
                               rtol=1e-6, atol=1e-6)
    # epoch 2: the accumulator was cleared; only epoch-2 samples count, unseen rows keep epoch-1 values
    z2, y2 = logits(4, classes, seed=40), torch.tensor([0, 0, 5, 5])
    loss.observe_teacher(z2, y2)
    loss.end_epoch()
    rows2 = class_prior_reference([z2], [y2], classes, T2)
    for c in range(classes):
        expected = rows2[c] if rows2[c] is not None else prior1[c].double()
        torch.testing.assert_close(loss.prior[c].double(), expected, rtol=1e-6, atol=1e-7)


def test_ikl_state_dict_round_trip_mid_epoch():
    classes = 5
    a = build_loss("ikl", class_prior=True, T2=1.0)
    a.observe_teacher(logits(8, classes, seed=50), targets_for(8, classes, 5))
    a.end_epoch()
    a.observe_teacher(logits(8, classes, seed=51), targets_for(8, classes, 6))  # half an epoch
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = build_loss("ikl", class_prior=True, T2=1.0)
    b.load_state_dict(torch.load(buf))
    zs, zt, y = logits(6, classes, seed=52), logits(6, classes, seed=53), targets_for(6, classes, 7)
    assert torch.equal(a(zs, zt, y), b(zs, zt, y))
    for loss in (a, b):
        loss.observe_teacher(logits(8, classes, seed=54), targets_for(8, classes, 8))
        loss.end_epoch()
    assert torch.equal(a.prior, b.prior)
    # the fresh loss (no state) is different: the round trip carried something
    fresh = build_loss("ikl", class_prior=True, T2=1.0)
    assert not torch.equal(fresh(zs, zt, y), a(zs, zt, y))


def test_ikl_sample_weights_ignore_the_hooks():
    loss = build_loss("ikl")
    loss.observe_teacher(logits(4, 5), targets_for(4, 5))
    loss.end_epoch()
    assert loss.state_dict() == {"prior": None, "accumulator": None, "history": [], "snapshots": {}}


def test_ikl_history_records_every_epoch_and_power_of_two_snapshots():
    loss = build_loss("ikl", class_prior=True, T2=2.0)
    priors = []
    for epoch in range(1, 6):
        zt, y = logits(30, 6, seed=epoch), targets_for(30, 6, seed=epoch)
        loss.observe_teacher(zt, y)
        loss.end_epoch()
        priors.append(loss.prior.clone())
    assert [h["epoch"] for h in loss.history] == [1, 2, 3, 4, 5]
    assert math.isnan(loss.history[0]["change"])
    for h, before, after in zip(loss.history[1:], priors, priors[1:]):
        assert h["change"] == pytest.approx((after - before).abs().mean().item(), rel=1e-6)
        assert h["diagonal"] == pytest.approx(after.diagonal().mean().item(), rel=1e-6)
    assert sorted(loss.snapshots) == [1, 2, 4]
    assert torch.equal(loss.snapshots[4], priors[3])
    twin = build_loss("ikl", class_prior=True, T2=2.0)
    twin.load_state_dict(loss.state_dict())
    assert twin.history == loss.history and torch.equal(twin.snapshots[2], loss.snapshots[2])
    old = {k: v for k, v in loss.state_dict().items() if k in ("prior", "accumulator")}
    twin.load_state_dict(old)                     # a checkpoint written before the history existed
    assert twin.history == [] and torch.equal(twin.prior, loss.prior)


@settings(deadline=None, max_examples=30)
@given(shape=st.tuples(st.integers(1, 8), st.integers(2, 50)), scale=st.floats(0.01, 100.0),
       seed=st.integers(0, 2**31 - 1), gamma=st.sampled_from([None, 0.2, 2.0]))
def test_property_ikl_wmse_zero_on_equal_logits_and_shift_invariant(shape, scale, seed, gamma):
    g = torch.Generator().manual_seed(seed)
    zt = scale * torch.randn(*shape, generator=g, dtype=F64)
    zs = scale * torch.randn(*shape, generator=g, dtype=F64)
    y = torch.zeros(shape[0], dtype=torch.long)
    loss = build_loss("ikl", T2=4.0, gamma=gamma)
    loss(zt, zt, y)
    assert loss.terms["wmse"].item() == 0.0
    loss(zs, zt, y)
    w1 = loss.terms["wmse"]
    loss(zs + 7.0 * torch.arange(shape[0], dtype=F64).unsqueeze(1), zt, y)
    torch.testing.assert_close(loss.terms["wmse"], w1, rtol=1e-7, atol=1e-9 * (1 + scale) ** 2)
    assert math.isfinite(w1.item()) and w1 >= 0
