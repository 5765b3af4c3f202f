"""`dkl`: decoupled KL (paper 2, Cui et al. NeurIPS 2024, arXiv 2305.13948, code jiequancui/DKL).

Paper, with m the target (teacher) side, n the student, Delta^{jk} = o^j - o^k, s = softmax(o),
w^{jk} = s_m^j s_m^k and S(.) a stop-gradient:

    DKL = alpha/4 * sum_{j,k} S(w_m^{jk}) (Delta_m^{jk} - S(Delta_n^{jk}))^2 - beta * S(s_m) . log s_n

Theorem 1: with alpha = beta = 1 its gradients equal those of KL(s_m || s_n), the wMSE term
giving the teacher-side gradient and the soft cross-entropy the student-side one.

Our temperature convention (chosen so that Theorem 1 holds against `kl` exactly): the paper's
o are z/tau and the whole thing is multiplied by tau^2, like `kl`:

    dkl = alpha/4 * sum_{j,k} w_j w_k ((zt_j - zt_k) - (zs_j - zs_k))^2          raw logits
        + beta * tau^2 * ( -softmax(zt/tau) . log_softmax(zs/tau) )               tau^2 soft CE
    w = softmax(zt/tau), detached; zs detached inside the first term; mean over the batch.

(tau^2 * (Delta/tau)^2 = Delta^2, hence raw logits in the first term.) With alpha = beta = 1:
student gradient tau (p_s - p_t)/B and teacher gradient w (a - <a>_w)/B, a = zt - zs,
both equal to those of `kl` with the same tau. The values differ: KL = -H(p_t) + soft CE,
while the wMSE value is not -H; the wMSE value is still computed (it is logged in
`terms["wmse"]`) although, for a frozen teacher, it contributes nothing to the student.

O(B*C): with sum_j w_j = 1 and a = zt - zs,
    sum_{j,k} w_j w_k (a_j - a_k)^2 = 2 * sum_j w_j (a_j - <a>_w)^2      (paper App. A.5),
and for unnormalised weights v with V = sum v: = 2 * V * sum_j v_j (a_j - <a>_v)^2.
The official KD code builds B x C x C tensors instead (see `losses.reference`).

Where the official code differs: its KD distiller (IKL_KD, see `losses.ikl`) uses raw-logit
wMSE but a soft CE without tau^2, and names the weights the other way round.
"""
import torch
import torch.nn.functional as F

from losses.base import LOSSES, DistillLoss, check_nonnegative, check_positive, reduce
from losses.fused import dkl_fused


def pair_weighted_sq(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """sum_{j,k} v_j v_k (a_j - a_k)^2 per row in O(C): 2 V sum_j v_j (a_j - <a>_v)^2, V = sum_j v_j."""
    total = v.sum(dim=1, keepdim=True)
    mean = (v * a).sum(dim=1, keepdim=True) / total.clamp_min(torch.finfo(a.dtype).tiny)
    return 2.0 * total.squeeze(1) * (v * (a - mean).pow(2)).sum(dim=1)


def soft_cross_entropy(zs: torch.Tensor, zt: torch.Tensor, tau: float, reduction: str = "mean") -> torch.Tensor:
    """-(S(softmax(zt/tau)) . log_softmax(zs/tau)) per sample; teacher probabilities detached."""
    log_pt = F.log_softmax(zt.detach() / tau, dim=1)
    log_ps = F.log_softmax(zs / tau, dim=1)
    return reduce(-(log_pt.exp() * log_ps).sum(dim=1), reduction)


def dkl_terms(zs: torch.Tensor, zt: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (wMSE, tau^2 soft CE) of `dkl` with the paper's stop-gradients."""
    w = F.softmax(zt.detach() / tau, dim=1)
    wmse = 0.25 * pair_weighted_sq(zt - zs.detach(), w)
    sce = (tau * tau) * soft_cross_entropy(zs, zt, tau, reduction="none")
    return wmse, sce


def dkl_loss(zs, zt, tau: float, alpha: float = 1.0, beta: float = 1.0, reduction: str = "mean"):
    """alpha * wMSE + beta * tau^2 * soft CE (see the module docstring)."""
    wmse, sce = dkl_terms(zs, zt, tau)
    return reduce(alpha * wmse + beta * sce, reduction)


@LOSSES.register("dkl")
class DKL(DistillLoss):
    """Decoupled KL; paper-named alpha (wMSE weight) and beta (soft-CE weight), tau finite > 0."""

    name = "dkl"

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, tau: float = 4.0):
        alpha = check_nonnegative("dkl", "alpha", alpha)
        beta = check_nonnegative("dkl", "beta", beta)
        tau = check_positive("dkl", "tau", tau)
        super().__init__(alpha=alpha, beta=beta, tau=tau)
        self.alpha, self.beta, self.tau = alpha, beta, tau

    def forward(self, zs, zt, targets):
        wmse, sce = dkl_fused(zs, zt, self.tau)     # = dkl_terms(...) meaned, <= 4 B*C floats
        self.terms = {"wmse": wmse.detach(), "soft_ce": sce.detach()}
        return self.alpha * wmse + self.beta * sce
