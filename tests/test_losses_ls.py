"""Logit standardization (Sun et al. CVPR 2024): z-scored logits into the base loss; invariances;
gradients against autograd on a reference written differently."""
import math

import pytest
import torch
from hypothesis import given, strategies as st

from losses import build_loss
from losses.ls import standardize
from loss_helpers import logits, targets_for, value_and_grads


def reference_ls_kl(zs, zt, tau):
    """tau^2 KL(p_t || p_s) on z-scores, the KL written as sum p_t (log p_t - log p_s) with explicit sums."""
    def z(x):
        n = x.shape[1]
        mean = x.sum(1, keepdim=True) / n
        std = ((x - mean).pow(2).sum(1, keepdim=True) / (n - 1)).sqrt()
        return (x - mean) / (std + 1e-7)

    a, b = z(zs) / tau, z(zt) / tau
    log_ps = a - torch.logsumexp(a, 1, keepdim=True)
    log_pt = b - torch.logsumexp(b, 1, keepdim=True)
    return (tau * tau * (log_pt.exp() * (log_pt - log_ps)).sum(1)).mean()


@pytest.mark.parametrize("tau", [1.0, 2.0, 4.0])
def test_value_and_gradient_match_a_reference(tau):
    zs, zt, y = logits(6, 11, seed=1), logits(6, 11, seed=2), targets_for(6, 11)
    loss = build_loss("ls", tau=tau)
    v, gs, _ = value_and_grads(lambda a, b: loss(a, b, y), zs, zt)
    rv, rgs, _ = value_and_grads(lambda a, b: reference_ls_kl(a, b, tau), zs, zt)
    torch.testing.assert_close(v, rv, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gs, rgs, rtol=1e-8, atol=1e-10)


@given(shift_s=st.floats(-50, 50), shift_t=st.floats(-50, 50), scale_s=st.floats(0.05, 20), scale_t=st.floats(0.05, 20))
def test_invariant_to_per_sample_shift_and_scale(shift_s, shift_t, scale_s, scale_t):
    zs, zt, y = logits(4, 9, seed=3), logits(4, 9, seed=4), targets_for(4, 9)
    loss = build_loss("ls")
    base = loss(zs, zt, y)
    moved = loss(scale_s * zs + shift_s, scale_t * zt + shift_t, y)
    # exact but for the + 1e-7 on the std (logit std here >= 0.05 * ~2.5: a relative change <= 1e-6)
    torch.testing.assert_close(moved, base, rtol=1e-5, atol=1e-8)


def test_z_scores_have_mean_zero_and_unit_std_and_the_teacher_gets_no_gradient():
    z = standardize(logits(5, 30, seed=5))
    torch.testing.assert_close(z.mean(1), torch.zeros(5, dtype=z.dtype), rtol=0, atol=1e-12)
    torch.testing.assert_close(z.std(1), torch.ones(5, dtype=z.dtype), rtol=1e-6, atol=0)
    zs, zt, y = logits(3, 7, seed=6), logits(3, 7, seed=7), targets_for(3, 7)
    _, gs, gt = value_and_grads(lambda a, b: build_loss("ls", base="dkd")(a, b, y), zs, zt)
    assert gt is None or torch.count_nonzero(gt) == 0
    assert torch.isfinite(gs).all() and gs.abs().sum() > 0


def test_base_dkd_equals_dkd_on_z_scores_and_labels():
    zs, zt, y = logits(5, 8, seed=8), logits(5, 8, seed=9), targets_for(5, 8)
    ls = build_loss("ls", base="dkd", tau=2.0, beta=6.0)
    torch.testing.assert_close(ls(zs, zt, y), build_loss("dkd", tau=2.0, beta=6.0)(standardize(zs), standardize(zt), y))
    assert ls.label() == "LS on DKD beta=6 tau=2"
    assert build_loss("ls").label() == "LS on KL tau=2"
    assert not math.isnan(build_loss("ls")(logits(2, 3), logits(2, 3, seed=1), targets_for(2, 3)).item())
