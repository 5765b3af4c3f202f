"""`ikl`: improved KL (paper 2, Cui et al. NeurIPS 2024, code jiequancui/DKL, IKL_KD / GKL_KD).

Paper: IKL = DKL with (1) the asymmetry broken, i.e. no stop-gradient on the student side of
the wMSE term, and (2) the per-sample weights w_m^{jk} = s_m^j s_m^k replaced by class-wise
global ones wbar_y^{jk} = sbar_y^j sbar_y^k, sbar_y the mean teacher probability over the
training samples of ground-truth class y.

Value computed here (matches the official `dkl_loss` of DKLv1/KD-dkl IKL_KD exactly):

    wMSE   = 0.25 * sum_{b,j,k} w_bj w_bk ((zt_bj - zt_bk) - (zs_bj - zs_bk))^2 / B   raw logits, no tau
    softCE = -(softmax(zt/tau) * log_softmax(zs/tau)).sum(1).mean()                   NO tau^2
    ikl    = alpha * wMSE + beta * softCE

    w_b = softmax(zt_b / T2)             class_prior=False (sample-wise weights)
    w_b = prior[y_b]                     class_prior=True  (global weights, "GI")

Factor convention: the official one, NOT the tau^2 one of `dkl`/`kl`. Hence with
break_asymmetry=False, class_prior=False and T2 = tau, `ikl(alpha, beta)` equals
`dkl(alpha, beta / tau^2)` in value and student gradient (tested). The teacher logits are
detached entirely (the official teacher runs under no_grad). Computed in O(B*C) through
sum_{j,k} v_j v_k (a_j - a_k)^2 = 2 V sum_j v_j (a_j - <a>_v)^2, never B x C x C.

Names: paper alpha weights the wMSE and paper beta the soft CE; the official code's names
are swapped (code ALPHA weights the soft CE, code BETA the wMSE). Official values in paper
names (alpha = code BETA, beta = code ALPHA), CIFAR-100 (T = tau = 4, T2 = 100, GI off):
res56->res20 alpha 4 beta 1; res110->res32 12/1; res32x4->res8x4 8/1; wrn40_2->wrn16_2 12/3;
wrn40_2->wrn40_1 8/1; vgg13->vgg8 12/1; res32x4->ShuffleV1 8/1; wrn40_2->ShuffleV1 4/1;
vgg13->MobileNetV2 12/4; ResNet50->MobileNetV2 12/1; res32x4->ShuffleV2 12/3.
ImageNet (tau = 1, T2 = 1, GI on): R34->R18 alpha 0.5 beta 1; R50->MobileNetV1 alpha 1 beta 4.
The official trainer also adds CE with weight 1.0 and ramps the whole KD term by
min(epoch / 20, 1); neither is part of this loss (the engine's job).

Class prior (class_prior=True): `observe_teacher` adds softmax(zt/T2) to row y of a C x C
accumulator for each training sample; `end_epoch` row-normalises it into the prior used
during the next epoch and clears the accumulator. Before the first `end_epoch` the weights are
uniform 1/C (official epoch 1). A class with no sample in an epoch keeps its previous row
(the official code would divide 0 by 0 there). With class_prior=False the hooks do nothing.

History (for looking at the prior, not for training): each `end_epoch` appends to
`history` the epoch, the mean absolute change of the prior since the previous epoch and the mean
diagonal (probability of a class's own class), and keeps a copy of the prior after epochs 1, 2,
4, 8, ... in `snapshots`; both are in `state_dict()`, so they survive resume and end up in the
run's checkpoint.

GKL (DKLv2 GKL_KD), `gamma` set: the weights are raised to gamma, v = w^gamma, and the wMSE
is divided by the total pair weight sum_{b,j,k} v_bj v_bk instead of B:

    wMSE_gamma = 0.25 * sum_{b,j,k} v_bj v_bk (Delta_t - Delta_s)^2 / sum_{b,j,k} v_bj v_bk

gamma=None (default) is IKL (divide by B); gamma=1 gives the same value up to rounding, as
normalised weights have pair sum 1 per sample. Official GKL CIFAR config: gamma 0.2,
T2 4, GI on.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from losses.base import LOSSES, DistillLoss, check_bool, check_nonnegative, check_positive
from losses.dkl import pair_weighted_sq, soft_cross_entropy
from losses.fused import ikl_fused


def ikl_terms(
    zs: torch.Tensor,
    zt: torch.Tensor,
    weights: torch.Tensor,
    tau: float,
    gamma: float | None = None,
    break_asymmetry: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(wMSE, softCE) batch scalars of `ikl` for given (B, C) weights (rows summing to 1)."""
    zt = zt.detach()
    v = weights.detach()
    if gamma is not None:
        v = v.pow(gamma)
    a = zt - (zs if break_asymmetry else zs.detach())
    pair = pair_weighted_sq(a, v)
    if gamma is None:
        norm = zs.shape[0]
    else:
        norm = v.sum(dim=1).pow(2).sum()  # sum_{b,j,k} v_bj v_bk
    wmse = 0.25 * pair.sum() / norm
    sce = soft_cross_entropy(zs, zt, tau)
    return wmse, sce


def ikl_loss(zs, zt, weights, tau, alpha=1.0, beta=1.0, gamma=None, break_asymmetry=True):
    """alpha * wMSE + beta * softCE (official factor convention, see the module docstring)."""
    wmse, sce = ikl_terms(zs, zt, weights, tau, gamma, break_asymmetry)
    return alpha * wmse + beta * sce


@LOSSES.register("ikl")
class IKL(DistillLoss):
    """Improved KL: paper-named alpha (wMSE) and beta (soft CE); see the module docstring."""

    name = "ikl"

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 1.0,
        tau: float = 4.0,
        T2: float = 100.0,
        break_asymmetry: bool = True,
        class_prior: bool = False,
        gamma: float | None = None,
    ):
        alpha = check_nonnegative("ikl", "alpha", alpha)
        beta = check_nonnegative("ikl", "beta", beta)
        tau = check_positive("ikl", "tau", tau)
        T2 = check_positive("ikl", "T2", T2)
        break_asymmetry = check_bool("ikl", "break_asymmetry", break_asymmetry)
        class_prior = check_bool("ikl", "class_prior", class_prior)
        if gamma is not None:
            gamma = check_positive("ikl", "gamma", gamma)
        super().__init__(alpha=alpha, beta=beta, tau=tau, T2=T2, break_asymmetry=break_asymmetry,
                         class_prior=class_prior, gamma=gamma)
        self.alpha, self.beta, self.tau, self.T2 = alpha, beta, tau, T2
        self.break_asymmetry, self.class_prior, self.gamma = break_asymmetry, class_prior, gamma
        self.prior: torch.Tensor | None = None        # (C, C) float32, row y = mean teacher prob of class y
        self.accumulator: torch.Tensor | None = None  # (C, C) float64 running sums of this epoch
        self.history: list[dict] = []                 # per end_epoch: epoch, change, diagonal
        self.snapshots: dict[int, torch.Tensor] = {}  # epoch (1, 2, 4, ...) -> prior after it

    # ------------------------------------------------------------ weights
    def current_prior(self, zt: torch.Tensor) -> torch.Tensor | None:
        """The class prior checked against the logits' class count and kept on their device;
        None when class_prior is off or before the first end_epoch (uniform weights)."""
        if not self.class_prior or self.prior is None:
            return None
        num_classes = zt.shape[1]
        if self.prior.shape != (num_classes, num_classes):
            raise ValueError(f"ikl class prior is {tuple(self.prior.shape)}, logits have {num_classes} classes")
        if self.prior.device != zt.device:
            self.prior = self.prior.to(zt.device)
        return self.prior

    def weights(self, zt: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, C) weights: prior[y] (uniform before the first end_epoch) or softmax(zt/T2)."""
        if not self.class_prior:
            return F.softmax(zt.detach() / self.T2, dim=1)
        prior = self.current_prior(zt)
        if prior is None:
            return zt.new_full(zt.shape, 1.0 / zt.shape[1])
        return prior.to(zt.dtype)[targets]

    def forward(self, zs, zt, targets):
        # the fused autograd.Function (losses/fused.py): equal to
        # ikl_terms(zs, zt, self.weights(zt, targets), ...) in value and gradient, <= 4 B*C floats
        prior = self.current_prior(zt)
        wmse, sce = ikl_fused(zs, zt, targets, prior, self.tau, self.T2, self.class_prior, self.gamma,
                              self.break_asymmetry)
        self.terms = {"wmse": wmse.detach(), "soft_ce": sce.detach()}
        return self.alpha * wmse + self.beta * sce

    # -------------------------------------------------------------- hooks
    @torch.no_grad()
    def observe_teacher(self, teacher_logits, targets) -> None:
        if not self.class_prior:
            return
        zt = teacher_logits.detach()
        num_classes = zt.shape[1]
        if self.accumulator is None:
            self.accumulator = torch.zeros(num_classes, num_classes, dtype=torch.float64, device=zt.device)
        elif self.accumulator.shape != (num_classes, num_classes):
            raise ValueError(f"ikl accumulator is {tuple(self.accumulator.shape)}, logits have {num_classes} classes")
        elif self.accumulator.device != zt.device:
            self.accumulator = self.accumulator.to(zt.device)
        probs = F.softmax(zt.float() / self.T2, dim=1)
        self.accumulator.index_add_(0, targets.to(zt.device).long(), probs.double())

    @torch.no_grad()
    def end_epoch(self) -> None:
        if not self.class_prior or self.accumulator is None:
            return
        acc = self.accumulator
        num_classes = acc.shape[0]
        sums = acc.sum(dim=1, keepdim=True)
        seen = sums.squeeze(1) > 0
        if self.prior is None:
            prior = torch.full_like(acc, 1.0 / num_classes)
        else:
            prior = self.prior.to(device=acc.device, dtype=torch.float64).clone()
        prior[seen] = acc[seen] / sums[seen]
        previous = self.prior
        self.prior = prior.float()
        self.accumulator = None
        self._record(previous)

    def _record(self, previous: torch.Tensor | None) -> None:
        epoch = len(self.history) + 1
        change = math.nan if previous is None else (self.prior - previous.to(self.prior.device)).abs().mean().item()
        self.history.append({"epoch": epoch, "change": change, "diagonal": self.prior.diagonal().mean().item()})
        if epoch & (epoch - 1) == 0:                  # a power of two
            self.snapshots[epoch] = self.prior.detach().cpu().clone()

    def state_dict(self) -> dict:
        def cpu(t):
            return None if t is None else t.detach().cpu().clone()

        return {"prior": cpu(self.prior), "accumulator": cpu(self.accumulator),
                "history": [dict(h) for h in self.history],
                "snapshots": {k: v.clone() for k, v in self.snapshots.items()}}

    def load_state_dict(self, d: dict) -> None:
        unknown = set(d) - {"prior", "accumulator", "history", "snapshots"}
        if unknown:
            raise ValueError(f"ikl state has unknown keys {sorted(unknown)}")
        prior, acc = d.get("prior"), d.get("accumulator")
        self.prior = None if prior is None else prior.detach().clone().float()
        self.accumulator = None if acc is None else acc.detach().clone().double()
        self.history = [dict(h) for h in d.get("history", [])]           # absent in older checkpoints
        self.snapshots = {int(k): v.clone() for k, v in d.get("snapshots", {}).items()}
