"""Fused forward/backward for `kl` (finite tau), `dkl` and `ikl`: at most 4 B*C floats.

The autograd versions (`losses.kl.kl_div_loss`, `losses.dkl.dkl_terms`, `losses.ikl.ikl_terms`)
keep the softmax, log-softmax and difference tensors alive between forward and backward
(measured: dkl 8 B*C, ikl 12 B*C floats). Each `torch.autograd.Function` here saves only its
inputs (z_s, z_t, the targets and the C x C class prior), computes the loss with in-place
temporaries and, in backward, recomputes what it needs and returns the closed-form gradient:

    kl   = tau^2 KL(p_t || p_s), mean over b      d/dz_s = tau (p_s - p_t) / B
                                                   d/dz_t = tau p_t (D - <D>_{p_t}) / B,  D = log p_t - log p_s
    dkl  = alpha wMSE + beta tau^2 softCE          d/dz_s = beta tau (p_s - p_t) / B      (wMSE: z_s detached)
                                                   d/dz_t = alpha V w (a - <a>_w) / B,    a = z_t - z_s, w = p_t
    ikl  = alpha wMSE + beta softCE (no tau^2)     d/dz_s = beta (p_s - p_t) / (tau B)
                                                            - [break_asymmetry] alpha V v (a - <a>_v) / N

with V = sum_j v_j per row and N the wMSE normaliser (B, or sum_b V_b^2 for GKL). The wMSE
student gradient comes from the weighted-variance identity
sum_{j,k} v_j v_k (a_j - a_k)^2 = 2 V sum_j v_j (a_j - <a>_v)^2: differentiating the right side,
the term through <a>_v vanishes (sum_j v_j (a_j - <a>_v) = 0), leaving 4 V v_k (a_k - <a>_v).
The weights are detached in every loss (as in the autograd versions), so no gradient flows
through them; the ikl teacher is detached entirely (official: under no_grad).

Memory (B x C float tensors alive at once, inputs and the returned gradient not counted):
forward at most 3 (p_t, a difference, one product), backward at most 3 (p_s, p_t, the
wMSE part). Measured with `python -m bench.run --only losses` (docs/speed.md).

Values and gradients equal the autograd versions to float rounding (tests/test_losses_fused.py,
also torch.autograd.gradcheck in float64). Double backward is NOT supported (`once_differentiable`):
no loss here is differentiated twice by the engine; use the autograd versions for that.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


# ----------------------------------------------------------------------------- helpers
def softmax_lse(z: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax(z / tau), logsumexp(z / tau) as (B, 1)) with one B x C allocation."""
    p = z / tau
    m = p.amax(dim=1, keepdim=True)
    p.sub_(m).exp_()
    s = p.sum(dim=1, keepdim=True)
    p.div_(s)
    return p, s.log_().add_(m)


def logsumexp(z: torch.Tensor, tau: float) -> torch.Tensor:
    """logsumexp(z / tau) as (B, 1); one temporary B x C, freed on return."""
    t = z / tau
    m = t.amax(dim=1, keepdim=True)
    s = t.sub_(m).exp_().sum(dim=1, keepdim=True)
    return s.log_().add_(m)


def soft_ce_rows(zs: torch.Tensor, pt: torch.Tensor, tau: float) -> torch.Tensor:
    """-(p_t . log_softmax(z_s / tau)) per row; one temporary B x C."""
    lse = logsumexp(zs, tau)
    log_ps = (zs / tau).sub_(lse)
    return log_ps.mul_(pt).sum(dim=1).neg_()


def weighted_centre(a: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre `a` in place on its v-weighted mean; returns (a - <a>_v, V = sum_j v_j as (B, 1))."""
    total = v.sum(dim=1, keepdim=True)
    # row dot products by a batched matmul: no B x C product tensor (sums blocked differently
    # from (v * a).sum(1), equal to float rounding)
    dot = torch.bmm(v.unsqueeze(1), a.unsqueeze(2)).view(-1, 1)
    mean = dot / total.clamp_min(torch.finfo(a.dtype).tiny)
    return a.sub_(mean), total


def pair_rows(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """sum_{j,k} v_j v_k (a_j - a_k)^2 per row = 2 V sum_j v_j (a_j - <a>_v)^2; consumes `a`."""
    ac, total = weighted_centre(a, v)
    return 2.0 * total.squeeze(1) * ac.pow_(2).mul_(v).sum(dim=1)


def student_soft_grad(zs: torch.Tensor, pt: torch.Tensor, tau: float, scale) -> torch.Tensor:
    """scale * (softmax(z_s / tau) - p_t), built in the softmax buffer."""
    ps, _ = softmax_lse(zs, tau)
    return ps.sub_(pt).mul_(scale)


# ----------------------------------------------------------------------------- kl
class FusedKL(torch.autograd.Function):
    """tau^2 KL(softmax(zt/tau) || softmax(zs/tau)), mean over the batch; finite tau."""

    @staticmethod
    def forward(ctx, zs, zt, tau: float):
        ctx.save_for_backward(zs, zt)
        ctx.tau = tau
        pt, lse_t = softmax_lse(zt, tau)
        lse_s = logsumexp(zs, tau)
        d = (zt - zs).div_(tau).sub_(lse_t - lse_s)          # log p_t - log p_s
        return d.mul_(pt).sum(dim=1).mean() * (tau * tau)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        zs, zt = ctx.saved_tensors
        tau, batch = ctx.tau, zs.shape[0]
        gs = gt = None
        pt, lse_t = softmax_lse(zt, tau)
        if ctx.needs_input_grad[1]:
            d = (zt - zs).div_(tau).sub_(lse_t - logsumexp(zs, tau))
            kl_rows = (d * pt).sum(dim=1, keepdim=True)
            gt = d.sub_(kl_rows).mul_(pt).mul_(g * (tau / batch))
        if ctx.needs_input_grad[0]:
            gs = student_soft_grad(zs, pt, tau, g * (tau / batch))
        return gs, gt, None


def kl_fused(zs: torch.Tensor, zt: torch.Tensor, tau: float) -> torch.Tensor:
    """`losses.kl.kl_div_loss(zs, zt, tau)` (mean) in at most 4 B*C floats; finite tau only."""
    return FusedKL.apply(zs, zt, float(tau))


# ----------------------------------------------------------------------------- dkl
class FusedDKL(torch.autograd.Function):
    """(wMSE, tau^2 soft CE), each the batch mean, of `dkl` with the paper's stop-gradients."""

    @staticmethod
    def forward(ctx, zs, zt, tau: float):
        ctx.save_for_backward(zs, zt)
        ctx.tau = tau
        w, _ = softmax_lse(zt, tau)
        wmse = 0.25 * pair_rows(zt - zs, w).mean()
        sce = soft_ce_rows(zs, w, tau).mean() * (tau * tau)
        return wmse, sce

    @staticmethod
    @once_differentiable
    def backward(ctx, g_wmse, g_sce):
        zs, zt = ctx.saved_tensors
        tau, batch = ctx.tau, zs.shape[0]
        gs = gt = None
        w, _ = softmax_lse(zt, tau)
        if ctx.needs_input_grad[1]:          # wMSE, teacher side (the soft CE sees a detached teacher)
            ac, total = weighted_centre(zt - zs, w)
            gt = ac.mul_(w).mul_(total).mul_(g_wmse / batch)
        if ctx.needs_input_grad[0]:          # soft CE only (wMSE has z_s detached)
            gs = student_soft_grad(zs, w, tau, g_sce * (tau / batch))
        return gs, gt, None


def dkl_fused(zs: torch.Tensor, zt: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-mean (wMSE, tau^2 soft CE) of `dkl`, equal to `losses.dkl.dkl_terms(...)` meaned."""
    return FusedDKL.apply(zs, zt, float(tau))


# ----------------------------------------------------------------------------- ikl
def ikl_weights(zt, targets, prior, T2: float, class_prior: bool, gamma: float | None) -> torch.Tensor:
    """The (B, C) wMSE weights v of `ikl` (detached; see losses.ikl): prior[y], uniform before the
    first epoch end, or softmax(zt/T2); raised to gamma for GKL."""
    if class_prior:
        if prior is None:
            v = zt.new_full(zt.shape, 1.0 / zt.shape[1])
        else:
            v = prior.to(zt.dtype)[targets]
    else:
        v, _ = softmax_lse(zt, T2)
    if gamma is not None:
        v.pow_(gamma)
    return v


class FusedIKL(torch.autograd.Function):
    """(wMSE, soft CE), batch scalars of `ikl` (official factor convention); teacher detached."""

    @staticmethod
    def forward(ctx, zs, zt, targets, prior, tau: float, T2: float, class_prior: bool,
                gamma: float | None, break_asymmetry: bool):
        ctx.save_for_backward(zs, zt, targets, prior)
        ctx.args = (tau, T2, class_prior, gamma, break_asymmetry)
        v = ikl_weights(zt, targets, prior, T2, class_prior, gamma)
        norm = zs.shape[0] if gamma is None else v.sum(dim=1).pow(2).sum()
        wmse = 0.25 * pair_rows(zt - zs, v).sum() / norm
        del v
        pt, _ = softmax_lse(zt, tau)
        sce = soft_ce_rows(zs, pt, tau).mean()
        return wmse, sce

    @staticmethod
    @once_differentiable
    def backward(ctx, g_wmse, g_sce):
        zs, zt, targets, prior = ctx.saved_tensors
        tau, T2, class_prior, gamma, break_asymmetry = ctx.args
        if not ctx.needs_input_grad[0]:
            return (None,) * 9
        batch = zs.shape[0]
        pt, _ = softmax_lse(zt, tau)
        gs = student_soft_grad(zs, pt, tau, g_sce / (tau * batch))
        del pt
        if break_asymmetry:
            v = ikl_weights(zt, targets, prior, T2, class_prior, gamma)
            norm = batch if gamma is None else v.sum(dim=1).pow(2).sum()
            ac, total = weighted_centre(zt - zs, v)
            gs.sub_(ac.mul_(v).mul_(total).mul_(g_wmse / norm))     # d a / d z_s = -1
        return (gs,) + (None,) * 8


def ikl_fused(zs, zt, targets, prior, tau: float, T2: float, class_prior: bool = False,
              gamma: float | None = None, break_asymmetry: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(wMSE, soft CE) of `ikl`, equal to `losses.ikl.ikl_terms` with `ikl_weights(...)` weights.
    `prior`: the (C, C) class prior or None (uniform when class_prior, unused otherwise)."""
    zt = zt.detach()
    if prior is not None:
        prior = prior.detach()
    return FusedIKL.apply(zs, zt, targets, prior, float(tau), float(T2), bool(class_prior), gamma,
                          bool(break_asymmetry))
