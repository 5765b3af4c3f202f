"""`ls`: logit standardization (Sun et al., "Logit Standardization in Knowledge Distillation",
CVPR 2024; code sunshangquan/logit-standardization-KD), a pre-process for another logit loss.

Both logit vectors are z-scored per sample before the base loss sees them:

    Z(z) = (z - mean_j z) / (std_j z + 1e-7)        std with Bessel's correction, as the authors' code
    ls   = base(Z(z_s), Z(z_t), y)                  e.g. base "kl" at tau 2: tau^2 KL(softmax(Z_t/2) || softmax(Z_s/2))

so the student matches the teacher's logit *relations* rather than their range: the loss is
invariant to adding a per-sample constant to, or multiplying by a per-sample positive number,
either logit vector (tested). The gradient flows through the student's standardization. With
base "kl" the temperature tau plays the authors' "base temperature" (their default 2; their KD
weight default 9 is the recipe's `kd_weight`, not part of this loss). Any registered base loss
works ("dkd" for DKD + LS); its hyperparameters are forwarded. Hooks are forwarded to the base
with the standardized teacher logits.
"""
from __future__ import annotations

import torch

from common import UserError
from losses.base import LOSSES, DistillLoss

EPS = 1e-7


def standardize(z: torch.Tensor) -> torch.Tensor:
    """Per-sample z-score over the classes (unbiased std, + 1e-7 as the authors' code)."""
    return (z - z.mean(dim=1, keepdim=True)) / (z.std(dim=1, keepdim=True) + EPS)


@LOSSES.register("ls")
class LogitStandardization(DistillLoss):
    """A base loss on z-scored student and teacher logits; see the module docstring."""

    name = "ls"

    def __init__(self, base: str = "kl", **base_hparams):
        if base == "ls" or not isinstance(base, str) or base not in LOSSES or base == "ce":
            known = ", ".join(n for n in LOSSES.names() if n not in ("ls", "ce"))
            raise UserError(f"loss 'ls': base must be one of {known}; got {base!r}")
        if base == "kl":
            base_hparams.setdefault("tau", 2.0)      # the authors' base temperature
        try:
            self.base = LOSSES.build(base, **base_hparams)
        except UserError as e:
            raise UserError(f"loss 'ls' (its own hyperparameter: base); base: {e}") from None
        super().__init__(base=base, **self.base.hparams)

    def label(self) -> str:
        return f"LS on {self.base.label()}"

    def forward(self, zs, zt, targets):
        loss = self.base(standardize(zs), standardize(zt.detach()), targets)
        self.terms = dict(self.base.terms)
        return loss

    def set_progress(self, p: float) -> None:
        super().set_progress(p)
        self.base.set_progress(p)

    def observe_teacher(self, teacher_logits, targets) -> None:
        self.base.observe_teacher(standardize(teacher_logits.detach()), targets)

    def end_epoch(self) -> None:
        self.base.end_epoch()

    def state_dict(self) -> dict:
        return {"base": self.base.state_dict()}

    def load_state_dict(self, d: dict) -> None:
        unknown = set(d) - {"base"}
        if unknown:
            raise ValueError(f"ls state has unknown keys {sorted(unknown)}")
        self.base.load_state_dict(d.get("base", {}))
