"""Distillation losses of the three papers, built by name.

    from losses import build_loss
    loss = build_loss("kl", tau=4.0)
    value = loss(student_logits, teacher_logits, targets)   # scalar, mean over the batch

Registered: ce, kl, mse (paper 1), dkl, ikl (paper 2), dkd (paper-2 baseline), tald (paper 3),
ls (logit standardization, Sun et al. CVPR 2024: the comparison's later baseline).
`losses.reference` holds slow re-implementations for tests and benchmarks; `losses.plugins`
imports a researcher's own file of losses (`--plugin` of reproduce.compare).
"""
from losses.base import LOSSES, DistillLoss, loss_defaults
from losses import ce, dkd, dkl, ikl, kl, ls, mse, tald  # noqa: F401  (registration)
from losses import plugins

LOSSES.fallback = plugins.load_env   # a name no built-in registers: a researcher's file of $LOGIT_KD_PLUGINS


def build_loss(name: str, **hparams) -> DistillLoss:
    """Build a registered loss; unknown names and hyperparameters raise UserError listing the allowed ones."""
    return LOSSES.build(name, **hparams)


def list_losses() -> list[str]:
    return LOSSES.names()


def defaults(name: str) -> dict:
    """A loss's default hyperparameters, from its constructor's signature."""
    return loss_defaults(LOSSES.get(name))


def loss_label(name: str, hparams: dict | None = None) -> str:
    """The loss's own short label for these hyperparameters, e.g. 'KL tau=20', 'LMSE'."""
    return build_loss(name, **(hparams or {})).label()


__all__ = ["LOSSES", "DistillLoss", "build_loss", "defaults", "list_losses", "loss_label"]
