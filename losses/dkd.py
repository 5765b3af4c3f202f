"""`dkd`: decoupled knowledge distillation (Zhao et al., CVPR 2022; mdistiller), a paper-2 baseline.

With p = softmax(z/tau), t the ground-truth class, b = [p_t, 1 - p_t] the binary
target/non-target split and phat_j = p_j / (1 - p_t) (j != t) the non-target distribution:

    TCKD = tau^2 * KL(b^T || b^S)            NCKD = tau^2 * KL(phat^T || phat^S)
    DKD  = mean_b (alpha * TCKD + beta * NCKD)

and classical KD decomposes exactly as  tau^2 KL(p^T || p^S) = TCKD + (1 - p_t^T) * NCKD
per sample (tested through `dkd_parts`).

Where mdistiller differs numerically (same value otherwise): it forms log b^S = log of
probabilities, and masks the target before the non-target softmax by subtracting 1000 from
z/tau, which stops masking once logits/tau differ by ~1000. Here log(1 - p_t) is
logsumexp over the non-target logits minus logsumexp over all of them, and the target is
masked with -inf and the masked entries zeroed after log_softmax, so no exp of raw logits
and no NaN for logits of 1e4 or fp16/bf16 inputs.
Defaults are mdistiller's CIFAR-100 ones (alpha 1, beta 8, tau 4); mdistiller also adds CE
weight 1.0 and a linear warm-up over 20 epochs, which belong to the engine, not here.
"""
import torch
import torch.nn.functional as F

from losses.base import LOSSES, DistillLoss, check_nonnegative, check_positive, reduce


def _split_log_probs(z: torch.Tensor, gt: torch.Tensor):
    """log p_t, log(1 - p_t) (B,) and the non-target log-softmax (B, C) with 0 at the target."""
    lse_all = torch.logsumexp(z, dim=1)
    masked = z.masked_fill(gt, float("-inf"))
    lse_nt = torch.logsumexp(masked, dim=1)
    log_p_target = (z.masked_fill(~gt, 0.0).sum(dim=1)) - lse_all
    log_p_other = lse_nt - lse_all
    log_phat = F.log_softmax(masked, dim=1).masked_fill(gt, 0.0)
    return log_p_target, log_p_other, log_phat


def dkd_parts(zs: torch.Tensor, zt: torch.Tensor, targets: torch.Tensor, tau: float):
    """Per-sample (TCKD, NCKD, teacher p_t), both parts scaled by tau^2."""
    gt = F.one_hot(targets, zs.shape[1]).bool()
    s_t, s_o, s_hat = _split_log_probs(zs / tau, gt)
    t_t, t_o, t_hat = _split_log_probs(zt / tau, gt)
    pt_t, pt_o = t_t.exp(), t_o.exp()
    tckd = pt_t * (t_t - s_t) + pt_o * (t_o - s_o)
    nckd = (t_hat.exp().masked_fill(gt, 0.0) * (t_hat - s_hat)).sum(dim=1)
    scale = tau * tau
    return tckd * scale, nckd * scale, pt_t


def dkd_loss(zs, zt, targets, tau: float, alpha: float = 1.0, beta: float = 8.0, reduction: str = "mean"):
    tckd, nckd, _ = dkd_parts(zs, zt, targets, tau)
    return reduce(alpha * tckd + beta * nckd, reduction)


@LOSSES.register("dkd")
class DKD(DistillLoss):
    """alpha * TCKD + beta * NCKD, both tau^2-scaled; alpha, beta >= 0, tau finite > 0."""

    name = "dkd"

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, tau: float = 4.0):
        alpha = check_nonnegative("dkd", "alpha", alpha)
        beta = check_nonnegative("dkd", "beta", beta)
        tau = check_positive("dkd", "tau", tau)
        super().__init__(alpha=alpha, beta=beta, tau=tau)
        self.alpha, self.beta, self.tau = alpha, beta, tau

    def forward(self, zs, zt, targets):
        tckd, nckd, _ = dkd_parts(zs, zt, targets, self.tau)
        tckd, nckd = tckd.mean(), nckd.mean()
        self.terms = {"tckd": tckd.detach(), "nckd": nckd.detach()}
        return self.alpha * tckd + self.beta * nckd
