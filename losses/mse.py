"""`mse`: logit matching, paper 1's LMSE (Kim et al. IJCAI 2021, official code jhoon-oh/kd_data).

    L_MSE = (1/(B*C)) sum_{b,j} (z_s,bj - z_t,bj)^2        (nn.MSELoss, mean over all elements)
    L     = alpha * L_MSE + (1 - alpha) * CE(z_s, y)        (official: alpha = 1, no CE, no tau)

The optional alpha mix is ours, for symmetry with `kl`. Relation to the tau = inf limit of
`kl`: kl(tau=inf) = 0.5 * L_MSE(centre(z_s), centre(z_t)), centre subtracting each sample's
mean logit; LMSE additionally matches the logit mean.
"""
import torch

from losses.base import LOSSES, DistillLoss, check_unit, cross_entropy, reduce


def mse_logit_loss(zs: torch.Tensor, zt: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean over classes of (zs - zt)^2 per sample; its batch mean is the mean over all B*C."""
    return reduce((zs - zt).pow(2).mean(dim=1), reduction)


@LOSSES.register("mse")
class MSE(DistillLoss):
    """alpha * mean((z_s - z_t)^2) + (1 - alpha) * CE; alpha in [0, 1] (default 1, official)."""

    name = "mse"
    short = "LMSE"

    def __init__(self, alpha: float = 1.0):
        alpha = check_unit("mse", "alpha", alpha)
        super().__init__(alpha=alpha)
        self.alpha = alpha

    def forward(self, zs, zt, targets):
        kd = mse_logit_loss(zs, zt)
        self.terms = {"mse": kd.detach()}
        if self.alpha == 1.0:
            return kd
        ce = cross_entropy(zs, targets)
        self.terms["ce"] = ce.detach()
        return self.alpha * kd + (1.0 - self.alpha) * ce
