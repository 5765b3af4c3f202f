"""One name, one objective: every method a paper table or the comparison trains, defined once.

A method is an *objective*: the loss with its hyperparameters, the weight of the engine's CE
term, the weight of the distillation term and the epochs of its warm-up ramp. A recipe is the
optimiser, schedule, epochs, batch and data, and carries none of these: a method sets all three
recipe fields itself (`Objective.overrides`), so no method inherits a CE weight or a warm-up
from the recipe it runs on.

Methods take a pair's settings (`reproduce.decoupled_kl.Pair`: tau, KD's CE share, DKD's beta,
IKL-KD's alpha/T2, the warm-up), because the papers tune some weights per pair; their *name*
never changes with a pair. `METHODS[name](pair)` is the objective; `label(config)` names any run
(a registered method's name, else its objective in words), and tests/test_methods.py fails when
one name stands for two objectives, or one objective for two names, within a profile.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from losses import defaults as loss_defaults

# the comparison's default protocol for a method that does not say otherwise (mdistiller's)
DEFAULT_CE_WEIGHT = 1.0


@dataclass(frozen=True)
class Objective:
    """ce_weight * CE + kd_weight * ramp(epoch) * loss(hparams); ramp min(epoch / warmup, 1)."""
    loss: str
    hparams: dict = field(default_factory=dict)
    ce_weight: float = 0.0
    kd_weight: float = 1.0
    warmup: int = 0

    def overrides(self) -> dict:
        """The recipe fields this objective sets (all three, always; CE runs set the neutral ones)."""
        return {"ce_weight": float(self.ce_weight), "kd_weight": float(self.kd_weight),
                "warmup_epochs": int(self.warmup)}

    def words(self) -> str:
        return objective_words(self.loss, self.hparams, self.ce_weight, self.kd_weight, self.warmup)


def _num(x) -> str:
    if isinstance(x, bool) or x is None:
        return str(x)
    return "inf" if isinstance(x, float) and math.isinf(x) else f"{x:g}" if isinstance(x, (int, float)) else str(x)


def _inner(loss: str, hp: dict) -> str:
    """The loss term in words with every hyperparameter (defaults filled in), e.g.
    '0.9 tau^2 KL(tau 4) + 0.1 CE' for kl with alpha 0.9."""
    hp = {**loss_defaults(loss), **hp}
    if loss == "kl":
        a, extra = hp.pop("alpha"), "" if not hp.get("rescale_small_tau") else ", x 1/tau for tau <= 1"
        kl = f"tau^2 KL(tau {_num(hp['tau'])}{extra})"
        return kl if a == 1 else f"{_num(a)} {kl} + {_num(round(1 - a, 10))} CE"
    if loss == "mse":
        a = hp.pop("alpha")
        return "MSE(logits)" if a == 1 else f"{_num(a)} MSE(logits) + {_num(round(1 - a, 10))} CE"
    if loss in ("tald", "ls"):
        base = hp.pop("base")
        own = {k: hp.pop(k) for k in list(hp) if k not in loss_defaults(base)}
        inner = _inner(base, hp)
        if loss == "ls":
            return f"{inner} on z-scored logits"
        noise = ", ".join(f"{k} {_num(v)}" for k, v in sorted(own.items()))
        return f"{inner} on teacher logits + noise ({noise})"
    args = ", ".join(f"{k} {_num(v)}" for k, v in sorted(hp.items()) if v is not None)
    return f"{loss.upper()}({args})" if args else loss.upper()


def objective_words(loss: str, hparams: dict, ce_weight: float, kd_weight: float, warmup: int) -> str:
    """The full objective, every weight and temperature: 'CE + 1 x [tau^2 KL(tau 4)], warm-up 8 epochs'."""
    if loss == "ce":
        return "CE"
    term = _inner(loss, dict(hparams))
    head = f"{_num(ce_weight)} CE + " if ce_weight else ""
    text = f"{head}{_num(kd_weight)} x [{term}]"
    return text + (f", warm-up {warmup} epochs" if warmup else "")


def config_objective(config) -> Objective:
    """The objective a run config trains (CE runs: plain CE whatever their recipe says)."""
    r = config.recipe
    if config.loss == "ce":
        return Objective("ce")
    return Objective(config.loss, dict(config.loss_hparams), r.get("ce_weight", 0.0), r.get("kd_weight", 1.0),
                     r.get("warmup_epochs", 0))


def config_words(config) -> str:
    return config_objective(config).words()


# --- the methods, by name ---------------------------------------------------------------
def _kd(p) -> Objective:
    # Hinton's KD as mdistiller ships it: (1 - a) CE + a tau^2 KL, no warm-up (a = 0.9 on CIFAR, 0.5 on ImageNet)
    return Objective("kl", {"tau": p.tau, "alpha": p.kd_alpha})


def _ce_kl(p) -> Objective:
    # CE + tau^2 KL at weight 1, no warm-up: paper 3's baseline; weight-matched to DKL and TALD
    return Objective("kl", {"tau": p.tau}, ce_weight=1.0)


def _dkd(p) -> Objective:
    return Objective("dkd", {"alpha": 1.0, "beta": p.dkd_beta, "tau": p.tau}, ce_weight=1.0, warmup=p.warmup)


def _dkl(p) -> Objective:
    # alpha = beta = 1: the same student gradient as tau^2 KL (Theorem 1); the pair's CE 1 and warm-up
    return Objective("dkl", {"alpha": 1.0, "beta": 1.0, "tau": p.tau}, ce_weight=1.0, warmup=p.warmup)


def _ikl(gi: bool):
    def make(p) -> Objective:
        return Objective("ikl", p.ikl(class_prior=gi), ce_weight=1.0, warmup=p.warmup)
    return make


def _tald(p, scale: float, kd_weights: bool = False) -> Objective:
    if scale == 0:      # no noise is the base objective itself: one run, under the base's name
        return _kd(p) if kd_weights else _ce_kl(p)
    hp = {"base": "kl", "tau": p.tau, "scale": scale}
    if kd_weights:      # KD's weights: (1 - a) CE + a tau^2 KL on the noisy teacher
        return Objective("tald", hp | {"alpha": p.kd_alpha})
    return Objective("tald", hp, ce_weight=1.0)


def _kd_ls(p) -> Objective:
    # the authors' KD + LS: base temperature 2, CE 0.1, KD 9, no warm-up (their KD has none)
    return Objective("ls", {"base": "kl", "tau": 2.0}, ce_weight=0.1, kd_weight=9.0)


def _dkd_ls(p) -> Objective:
    # the authors' DKD + LS (--logit-stand --base-temp 2 --kd-weight 9): DKD's alpha and beta times 9
    return Objective("ls", {"base": "dkd", "tau": 2.0, "alpha": 9.0, "beta": 9.0 * p.dkd_beta},
                     ce_weight=1.0, warmup=p.warmup)


def kl_alone(tau: float) -> Objective:
    """Paper 1's objective: tau^2 KL alone (alpha 1, no CE)."""
    return Objective("kl", {"tau": float(tau)})


def lmse() -> Objective:
    return Objective("mse", {})


def ce_lmse() -> Objective:
    return Objective("mse", {}, ce_weight=1.0)


METHODS = {
    "CE": lambda p: Objective("ce"),
    "KD": _kd,
    "CE + KL": _ce_kl,
    "LMSE": lambda p: lmse(),
    "CE + LMSE": lambda p: ce_lmse(),
    "DKD": _dkd,
    "DKL": _dkl,
    "IKL-KD": _ikl(False),
    "IKL-KD + GI": _ikl(True),
    "KD + LS": _kd_ls,
    "DKD + LS": _dkd_ls,
}


def kl_alone_name(tau: float) -> str:
    return f"KL tau={_num(float(tau))} alone"


def tald_name(scale: float, kd_weights: bool = False) -> str:
    if scale == 0:
        return "KD" if kd_weights else "CE + KL"
    return f"TALD {_num(scale)}" + (" at KD's weights" if kd_weights else "")


def method(name: str, pair) -> Objective:
    """A method by name: a fixed one, 'KL tau=<t> alone' or 'TALD <scale>[ at KD's weights]'."""
    if name in METHODS:
        return METHODS[name](pair)
    if name.startswith("KL tau=") and name.endswith(" alone"):
        return kl_alone(float(name[len("KL tau="):-len(" alone")]))
    if name.startswith("TALD "):
        kd_weights = name.endswith(" at KD's weights")
        scale = float(name[len("TALD "):].split(" ")[0])
        return _tald(pair, scale, kd_weights)
    raise KeyError(f"unknown method '{name}'; known: {', '.join(METHODS)}, 'KL tau=<t> alone', 'TALD <scale>'")
