"""Fused losses (losses/fused.py): equal to the autograd versions, gradcheck, memory <= 4 B*C floats."""
import pytest
import torch
import torch.nn.functional as F

from bench.memory import peak_floats
from losses import build_loss
from losses.dkl import dkl_terms
from losses.fused import FusedDKL, FusedIKL, FusedKL, dkl_fused, ikl_fused, ikl_weights, kl_fused
from losses.ikl import ikl_terms
from losses.kl import kl_div_loss
from losses.reference import dkl_pairwise_reference, ikl_pairwise_reference, kl_loop_reference
from loss_helpers import F64, logits, targets_for


def prior_for(classes, seed=3):
    g = torch.Generator().manual_seed(seed)
    return F.softmax(2 * torch.randn(classes, classes, generator=g, dtype=F64), dim=1)


def grads(fn, zs, zt, teacher_grad=True):
    """(outputs, gradients w.r.t. zs and zt) with fresh leaves; two outputs are summed with
    weights 1.3 and 0.7 (the references take alpha=1.3, beta=0.7 themselves)."""
    zs = zs.detach().clone().requires_grad_(True)
    zt = zt.detach().clone().requires_grad_(teacher_grad)
    out = fn(zs, zt)
    out = out if isinstance(out, tuple) else (out,)
    total = out[0] if len(out) == 1 else 1.3 * out[0] + 0.7 * out[1]
    inputs = (zs, zt) if teacher_grad else (zs,)
    g = torch.autograd.grad(total, inputs, allow_unused=True)
    return [o.detach() for o in out], g[0], (g[1] if teacher_grad else None)


def assert_same(a, b, rtol=1e-10, atol=1e-12):
    out_a, gs_a, gt_a = a
    out_b, gs_b, gt_b = b
    for x, y in zip(out_a, out_b):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol)
    torch.testing.assert_close(gs_a, gs_b, rtol=rtol, atol=atol)
    if gt_b is None:
        assert gt_a is None or torch.count_nonzero(gt_a) == 0
    else:
        torch.testing.assert_close(gt_a, gt_b, rtol=rtol, atol=atol)


# ------------------------------------------------------------- equal to autograd (float64)
@pytest.mark.parametrize("tau", [0.3, 1.0, 4.0, 50.0])
@pytest.mark.parametrize("scale", [0.01, 3.0, 30.0])
def test_kl_fused_equals_autograd_and_reference(tau, scale):
    zs, zt = logits(6, 11, scale, seed=1), logits(6, 11, scale, seed=2)
    fused = grads(lambda a, b: kl_fused(a, b, tau), zs, zt)
    assert_same(fused, grads(lambda a, b: kl_div_loss(a, b, tau), zs, zt))
    if scale <= 3.0:     # the loop reference's own gradient has 0 * log 0 = nan at extreme logits
        assert_same(fused, grads(lambda a, b: kl_loop_reference(a, b, tau), zs, zt), rtol=1e-9)


@pytest.mark.parametrize("tau", [0.5, 1.0, 4.0, 20.0])
def test_dkl_fused_equals_autograd_terms_and_reference(tau):
    zs, zt = logits(5, 9, seed=3), logits(5, 9, seed=4)

    def autograd_terms(a, b):
        wmse, sce = dkl_terms(a, b, tau)
        return wmse.mean(), sce.mean()

    fused = grads(lambda a, b: dkl_fused(a, b, tau), zs, zt)
    assert_same(fused, grads(autograd_terms, zs, zt))
    # and the weighted sum equals the B x C x C reference with alpha 1.3, beta 0.7
    ref = grads(lambda a, b: dkl_pairwise_reference(a, b, tau, 1.3, 0.7), zs, zt)
    torch.testing.assert_close(1.3 * fused[0][0] + 0.7 * fused[0][1], ref[0][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fused[1], ref[1], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(fused[2], ref[2], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("break_asymmetry", [True, False])
@pytest.mark.parametrize("class_prior,have_prior", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("gamma", [None, 0.2, 2.0])
def test_ikl_fused_equals_autograd_terms_and_reference(break_asymmetry, class_prior, have_prior, gamma):
    batch, classes, tau, T2 = 7, 10, 4.0, 3.0
    zs, zt, y = logits(batch, classes, seed=5), logits(batch, classes, seed=6), targets_for(batch, classes, 1)
    prior = prior_for(classes) if have_prior else None

    def autograd_terms(a, b):
        v = ikl_weights(b.detach(), y, prior, T2, class_prior, None)      # weights before gamma
        return ikl_terms(a, b, v, tau, gamma, break_asymmetry)

    def fused_terms(a, b):
        return ikl_fused(a, b, y, prior, tau, T2, class_prior, gamma, break_asymmetry)

    fused = grads(fused_terms, zs, zt, teacher_grad=False)
    assert_same(fused, grads(autograd_terms, zs, zt, teacher_grad=False))
    ref_prior = prior if have_prior else (torch.full((classes, classes), 1.0 / classes, dtype=F64)
                                          if class_prior else None)
    ref = grads(lambda a, b: ikl_pairwise_reference(a, b, y, tau, T2, 1.3, 0.7, prior=ref_prior, gamma=gamma,
                                                   break_asymmetry=break_asymmetry), zs, zt, teacher_grad=False)
    torch.testing.assert_close(1.3 * fused[0][0] + 0.7 * fused[0][1], ref[0][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fused[1], ref[1], rtol=1e-9, atol=1e-12)


def test_ikl_fused_gives_the_teacher_no_gradient():
    zs = logits(4, 6, seed=7).requires_grad_(True)
    zt = logits(4, 6, seed=8).requires_grad_(True)
    wmse, sce = ikl_fused(zs, zt, targets_for(4, 6), None, 4.0, 2.0)
    gs, gt = torch.autograd.grad(wmse + sce, (zs, zt), allow_unused=True)
    assert gs is not None and gt is None


# ------------------------------------------------------------- gradcheck (float64)
def test_gradcheck_kl():
    zs, zt = logits(3, 5, seed=9).requires_grad_(True), logits(3, 5, seed=10).requires_grad_(True)
    for tau in (0.7, 4.0):
        assert torch.autograd.gradcheck(lambda a, b: FusedKL.apply(a, b, tau), (zs, zt))


def test_gradcheck_dkl_soft_ce():
    """Only the soft CE w.r.t. z_s is a true derivative: the wMSE detaches z_s and its weights
    (stop-gradients, paper 2), which gradcheck's finite differences do not know about; those
    parts are compared with autograd and the pairwise reference above."""
    zs, zt = logits(3, 5, seed=11).requires_grad_(True), logits(3, 5, seed=12)
    assert torch.autograd.gradcheck(lambda a: FusedDKL.apply(a, zt, 2.0)[1], (zs,))


@pytest.mark.parametrize("gamma", [None, 0.5])
@pytest.mark.parametrize("class_prior", [False, True])
def test_gradcheck_ikl_break_asymmetry(gamma, class_prior):
    zs = logits(4, 5, seed=13).requires_grad_(True)
    zt, y = logits(4, 5, seed=14), targets_for(4, 5, 2)
    prior = prior_for(5) if class_prior else None
    fn = lambda a: FusedIKL.apply(a, zt, y, prior, 4.0, 2.0, class_prior, gamma, True)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (zs,))


def test_double_backward_is_refused():
    zs = logits(3, 4, seed=15).requires_grad_(True)
    (g,) = torch.autograd.grad(kl_fused(zs, logits(3, 4, seed=16), 2.0), zs, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(g.sum(), zs)


# ------------------------------------------------------------- registered losses, float32
CONFIGS = [
    ("kl", {"tau": 4.0}),
    ("kl", {"tau": 1.0, "alpha": 0.5}),
    ("dkl", {"alpha": 2.0, "beta": 0.5, "tau": 4.0}),
    ("ikl", {}),
    ("ikl", {"class_prior": True, "gamma": 0.2, "T2": 4.0}),
    ("ikl", {"break_asymmetry": False, "T2": 1.0}),
]


def autograd_value(name, hp, loss, zs, zt, y):
    """The registered loss as it was before the fused versions (plain autograd)."""
    if name == "kl":
        kd = kl_div_loss(zs, zt, hp["tau"])
        alpha = hp.get("alpha", 1.0)
        return kd if alpha == 1.0 else alpha * kd + (1 - alpha) * F.cross_entropy(zs, y)
    if name == "dkl":
        wmse, sce = dkl_terms(zs, zt, hp["tau"])
        return hp["alpha"] * wmse.mean() + hp["beta"] * sce.mean()
    wmse, sce = ikl_terms(zs, zt, loss.weights(zt, y), loss.tau, loss.gamma, loss.break_asymmetry)
    return loss.alpha * wmse + loss.beta * sce


@pytest.mark.parametrize("name,hp", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_registered_loss_equals_autograd_float32(name, hp):
    zs, zt, y = logits(16, 40, seed=17, dtype=torch.float32), logits(16, 40, seed=18, dtype=torch.float32), \
        targets_for(16, 40, 3)
    loss = build_loss(name, **hp)
    if name == "ikl" and hp.get("class_prior"):
        loss.observe_teacher(zt, y)
        loss.end_epoch()
    a = zs.clone().requires_grad_(True)
    b = zs.clone().requires_grad_(True)
    va = loss(a, zt, y)
    vb = autograd_value(name, hp, loss, b, zt, y)
    (ga,) = torch.autograd.grad(va, a)
    (gb,) = torch.autograd.grad(vb, b)
    torch.testing.assert_close(va, vb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------- memory
@pytest.mark.parametrize("name,hp", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_forward_backward_holds_at_most_4_bc_floats(name, hp):
    """Exact count of live tensor bytes (bench/memory.py), the accumulated gradient included.
    kl with alpha < 1 adds the hard-label cross-entropy through autograd (still <= 4)."""
    batch, classes = 16, 2000
    zs = logits(batch, classes, seed=19, dtype=torch.float32).requires_grad_(True)
    zt, y = logits(batch, classes, seed=20, dtype=torch.float32), targets_for(batch, classes, 4)
    loss = build_loss(name, **hp)
    if name == "ikl" and hp.get("class_prior"):
        loss.observe_teacher(zt, y)
        loss.end_epoch()
    used = peak_floats(lambda: loss(zs, zt, y).backward(), batch * classes)
    assert used <= 4.0, used
    assert zs.grad is not None and torch.isfinite(zs.grad).all()


def test_autograd_versions_held_more():
    """What the fused versions replaced: ikl through autograd keeps 7 B*C floats here."""
    batch, classes = 16, 2000
    zs = logits(batch, classes, seed=21, dtype=torch.float32).requires_grad_(True)
    zt = logits(batch, classes, seed=22, dtype=torch.float32)
    w = F.softmax(zt / 100.0, dim=1)
    before = peak_floats(lambda: sum(ikl_terms(zs, zt, w, 4.0)).backward(), batch * classes)
    zs.grad = None
    after = peak_floats(lambda: sum(ikl_fused(zs, zt, targets_for(batch, classes), None, 4.0, 100.0)).backward(),
                        batch * classes)
    assert before > 5.0 and after <= 3.1, (before, after)
