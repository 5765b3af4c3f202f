"""`kl`: temperature-scaled KL distillation (Hinton et al.; paper 1, Kim et al. IJCAI 2021).

Paper 1 / official code (jhoon-oh/kd_data):

    L_KL = tau^2 * KL(softmax(z_t/tau) || softmax(z_s/tau))   sum over classes, mean over batch
    L    = alpha * L_KL + (1 - alpha) * CE(z_s, y)               (paper 1 main runs: alpha = 1)

Student gradient per sample (before the 1/B of the batch mean): tau * (p_s - p_t).

tau = inf. The official code does not evaluate a loss there: it injects the limit gradient
(d - mean_j d) / (C * B), d = z_s - z_t. We use the closed-form loss whose gradient is
exactly that,

    L_inf = (1/B) sum_b (1/(2C)) sum_j (d_bj - mean_j d_b)^2,

which is also the tau -> inf limit of L_KL (expand softmax(z/tau) ~ (1 + z/tau - mean z/tau)/C).
It is invariant to adding a per-sample constant to z_s or z_t and equals
0.5 * MSE(centre(z_s), centre(z_t)), MSE the mean over all B*C elements.

tau -> 0: tau * (p_s - p_t) / tau -> onehot(argmax z_s) - onehot(argmax z_t) (label matching).
`rescale_small_tau=True` multiplies the loss by 1/tau when tau <= 1, as the supplement of
paper 1 suggests, so the gradient stays O(1) for small tau (off by default, as in the code).

Numerics: log_softmax on float32 (or float64) logits, probabilities only as exp of
log-probabilities, so values and gradients stay finite for logits of 1e4 and fp16/bf16 inputs.
"""
import math

import torch
import torch.nn.functional as F

from losses.base import LOSSES, DistillLoss, check_bool, check_positive, check_unit, cross_entropy, reduce
from losses.fused import kl_fused


def kl_div_loss(zs: torch.Tensor, zt: torch.Tensor, tau: float, reduction: str = "mean") -> torch.Tensor:
    """tau^2 * KL(softmax(zt/tau) || softmax(zs/tau)) per sample; tau = inf gives `kl_inf_loss`."""
    if math.isinf(tau):
        return kl_inf_loss(zs, zt, reduction)
    log_ps = F.log_softmax(zs / tau, dim=1)
    log_pt = F.log_softmax(zt / tau, dim=1)
    per_sample = (log_pt.exp() * (log_pt - log_ps)).sum(dim=1) * (tau * tau)
    return reduce(per_sample, reduction)


def kl_inf_loss(zs: torch.Tensor, zt: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The tau -> inf limit: (1/(2C)) * sum_j (d_j - mean_j d)^2 per sample, d = zs - zt."""
    d = zs - zt
    dc = d - d.mean(dim=1, keepdim=True)
    per_sample = dc.pow(2).sum(dim=1) / (2 * zs.shape[1])
    return reduce(per_sample, reduction)


@LOSSES.register("kl")
class KL(DistillLoss):
    """alpha * tau^2 KL(p_t || p_s) + (1 - alpha) * CE; tau in (0, inf], alpha in [0, 1]."""

    name = "kl"
    short = "KL"
    always_shown = ("tau",)

    def __init__(self, tau: float = 4.0, alpha: float = 1.0, rescale_small_tau: bool = False):
        tau = check_positive("kl", "tau", tau, allow_inf=True)
        alpha = check_unit("kl", "alpha", alpha)
        rescale_small_tau = check_bool("kl", "rescale_small_tau", rescale_small_tau)
        super().__init__(tau=tau, alpha=alpha, rescale_small_tau=rescale_small_tau)
        self.tau, self.alpha, self.rescale_small_tau = tau, alpha, rescale_small_tau
        # 1/tau for tau <= 1 when asked (paper 1 supplement), else 1
        self.kd_factor = 1.0 / tau if (rescale_small_tau and tau <= 1.0) else 1.0

    def forward(self, zs, zt, targets):
        # finite tau: the fused autograd.Function (losses/fused.py, <= 4 B*C floats, same value
        # and gradient as kl_div_loss); tau = inf: the closed-form limit through autograd
        kd = kl_inf_loss(zs, zt) if math.isinf(self.tau) else kl_fused(zs, zt, self.tau)
        kd = kd * self.kd_factor
        self.terms = {"kd": kd.detach()}
        if self.alpha == 1.0:
            return kd
        ce = cross_entropy(zs, targets)
        self.terms["ce"] = ce.detach()
        return self.alpha * kd + (1.0 - self.alpha) * ce
