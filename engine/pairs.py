"""Paper 2's teacher -> student pairs: which recipe each uses and its IKL-KD loss weights.

Source: the official DKL code's configs (jiequancui/DKL, ../shared/papers.md), converted to the
paper's names: `alpha` weights the wMSE term and `beta` the soft CE. The code's names are swapped
(code ALPHA weights the soft CE, code BETA the wMSE), so a code line "ALPHA 1, BETA 4" is
alpha = 4, beta = 1 here. Every pair also gets the recipe's CE weight 1.0 and KD warm-up ramp.

    pair = paper2_pair("resnet56", "resnet20")
    config = make_config(..., model=pair.student, loss="ikl", loss_hparams=pair.ikl_hparams(),
                         recipe=pair.recipe)
"""
from dataclasses import dataclass

from common import UserError


@dataclass(frozen=True)
class Pair:
    teacher: str
    student: str
    recipe: str          # a name in engine/recipes.py
    alpha: float         # paper alpha: weight of the wMSE term (code BETA)
    beta: float          # paper beta: weight of the soft CE term (code ALPHA)
    tau: float           # soft-CE temperature (code T)
    T2: float            # weight temperature of the wMSE weights (code T2)
    class_prior: bool    # class-wise global weights (code GI)

    def ikl_hparams(self) -> dict:
        """Keyword arguments of `build_loss("ikl", ...)` for this pair's official IKL-KD run."""
        return {"alpha": self.alpha, "beta": self.beta, "tau": self.tau, "T2": self.T2,
                "class_prior": self.class_prior, "break_asymmetry": True}


def _cifar(teacher, student, lr_recipe, code_alpha, code_beta) -> Pair:
    # CIFAR-100 configs: T 4, T2 100, GI off.
    return Pair(teacher, student, lr_recipe, alpha=code_beta, beta=code_alpha, tau=4.0, T2=100.0,
                class_prior=False)


_SGD = "mdistiller_cifar"            # lr 0.05
_LIGHT = "mdistiller_cifar_light"    # lr 0.01, MobileNet/ShuffleNet students

PAPER2_PAIRS = {(p.teacher, p.student): p for p in [
    # Table 13, same family                      code ALPHA (soft CE), code BETA (wMSE)
    _cifar("resnet56", "resnet20", _SGD, 1, 4),
    _cifar("resnet110", "resnet32", _SGD, 1, 12),
    _cifar("resnet32x4", "resnet8x4", _SGD, 1, 8),
    _cifar("wrn_40_2", "wrn_16_2", _SGD, 3, 12),
    _cifar("wrn_40_2", "wrn_40_1", _SGD, 1, 8),
    _cifar("vgg13", "vgg8", _SGD, 1, 12),
    # Table 14, cross family
    _cifar("resnet32x4", "ShuffleV1", _LIGHT, 1, 8),
    _cifar("wrn_40_2", "ShuffleV1", _LIGHT, 1, 4),
    _cifar("vgg13", "MobileNetV2", _LIGHT, 4, 12),
    _cifar("ResNet50", "MobileNetV2", _LIGHT, 1, 12),
    _cifar("resnet32x4", "ShuffleV2", _LIGHT, 3, 12),
    # ImageNet (Table 4): T 1, T2 1, GI on
    Pair("resnet34", "resnet18", "imagenet", alpha=0.5, beta=1.0, tau=1.0, T2=1.0, class_prior=True),
    Pair("resnet50", "MobileNetV1", "imagenet", alpha=1.0, beta=4.0, tau=1.0, T2=1.0, class_prior=True),
]}


def paper2_pair(teacher: str, student: str) -> Pair:
    try:
        return PAPER2_PAIRS[(teacher, student)]
    except KeyError:
        known = ", ".join(f"{t}->{s}" for t, s in PAPER2_PAIRS)
        raise UserError(f"paper 2 has no pair {teacher}->{student}; known: {known}") from None
