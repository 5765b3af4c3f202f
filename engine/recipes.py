"""Training recipes as data: optimizer, schedule, batch size, loss weights.

Every field says its unit and where it comes from. A recipe is looked up by name
(`get_recipe`) and may be overridden field by field (`Recipe.replace`); the resolved
recipe is written into each run's config.json, so a run directory says exactly how
it was trained.
"""
import dataclasses
import math
from dataclasses import dataclass

from common import Registry, UserError


@dataclass(frozen=True)
class Recipe:
    epochs: int                      # passes over the training set
    batch_size: int                  # examples per optimizer step
    lr: float                        # peak learning rate (per step, not scaled by batch)
    optimizer: str = "sgd"           # "sgd" or "adam"
    momentum: float = 0.9            # SGD momentum
    nesterov: bool = False           # SGD Nesterov momentum
    weight_decay: float = 5e-4       # L2 coefficient
    wd_exempt_bn_bias: bool = False  # no weight decay on BatchNorm weights and biases
    schedule: str = "multistep"      # "multistep" (per epoch), "cosine" (per step, to 0), "constant"
    milestones: tuple = ()           # epochs (1-based count of finished epochs) where lr *= gamma
    gamma: float = 0.1               # multistep factor
    # The objective's three fields: set by each method (reproduce/methods.py), never by a named recipe,
    # so no method inherits a CE weight or a warm-up from the recipe it runs on.
    warmup_epochs: int = 0           # KD weight ramp min(epoch / warmup, 1), epoch 1-based; 0 = off
    ce_weight: float = 0.0           # weight of CE(student, labels) added by the engine
    kd_weight: float = 1.0           # weight of the distillation loss
    eval_every: int = 1              # test-set evaluation every N epochs; the first and the last 10
                                     # epochs are always evaluated (summary: last, last-10 mean, best)
    stack: bool = False              # train with same-architecture group mates as one vmapped model
                                     # (engine/stacked.py): faster, equal to a separate run only up to
                                     # float32 rounding, so it is part of the run id (when True)
    source: str = ""                 # where these numbers come from

    def replace(self, **overrides) -> "Recipe":
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise UserError(f"recipe has no field {', '.join(unknown)}; fields: {', '.join(sorted(fields))}")
        if "milestones" in overrides:
            if not isinstance(overrides["milestones"], (list, tuple)):
                raise UserError(f"milestones must be a list of epochs, got {overrides['milestones']!r}")
            overrides["milestones"] = tuple(overrides["milestones"])
        return validate(dataclasses.replace(self, **overrides))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if not d["stack"]:
            del d["stack"]           # the default stays out of configs: run ids from before the field hold
        return d


_INTS = ("epochs", "batch_size", "warmup_epochs", "eval_every")
_FLOATS = ("lr", "momentum", "weight_decay", "gamma", "ce_weight", "kd_weight")


def validate(r: Recipe) -> Recipe:
    for name in _INTS:
        if not _is_int(getattr(r, name)):
            raise UserError(f"{name} must be an integer, got {getattr(r, name)!r}")
    for name in _FLOATS:
        value = getattr(r, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise UserError(f"{name} must be a finite number, got {value!r}")
    if r.epochs < 1:
        raise UserError(f"epochs must be >= 1, got {r.epochs}")
    if not r.lr > 0:
        raise UserError(f"lr must be > 0, got {r.lr}")
    if r.batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {r.batch_size}")
    if r.optimizer not in ("sgd", "adam"):
        raise UserError(f"optimizer must be 'sgd' or 'adam', got '{r.optimizer}'")
    if r.schedule not in ("multistep", "cosine", "constant"):
        raise UserError(f"schedule must be multistep, cosine or constant, got '{r.schedule}'")
    if not all(_is_int(m) and m >= 1 for m in r.milestones):
        raise UserError(f"milestones must be epochs >= 1, got {list(r.milestones)}")
    if not isinstance(r.stack, bool):
        raise UserError(f"stack must be true or false, got {r.stack!r}")
    if r.eval_every < 1:
        raise UserError(f"eval_every must be >= 1, got {r.eval_every}")
    for name in ("weight_decay", "ce_weight", "kd_weight", "warmup_epochs", "momentum"):
        if getattr(r, name) < 0:
            raise UserError(f"{name} must be >= 0, got {getattr(r, name)}")
    if not r.gamma > 0:
        raise UserError(f"gamma must be > 0, got {r.gamma}")
    return r


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def lr_at(r: Recipe, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Learning rate for 0-based `epoch` and `step` within it: a pure function, so resume needs no state."""
    if r.schedule == "constant":
        return r.lr
    if r.schedule == "cosine":
        total = max(r.epochs * steps_per_epoch, 1)
        t = epoch * steps_per_epoch + step
        return 0.5 * r.lr * (1.0 + math.cos(math.pi * t / total))
    drops = sum(1 for m in r.milestones if epoch >= m)
    return r.lr * (r.gamma ** drops)


def evaluates(r: Recipe, epoch: int) -> bool:
    """Whether 1-based `epoch` gets a test-set evaluation: every `eval_every`-th, the first, and
    each of the last 10, so the summary's last-epoch and last-10 statistics are always complete."""
    return epoch == 1 or epoch % r.eval_every == 0 or epoch > r.epochs - 10


def kd_ramp(r: Recipe, epoch: int) -> float:
    """mdistiller's warm-up min(epoch / warmup, 1) with 1-based epoch; `epoch` here is 0-based."""
    return 1.0 if r.warmup_epochs == 0 else min((epoch + 1) / r.warmup_epochs, 1.0)


RECIPES = Registry("recipe")


def _recipe(name: str, recipe: Recipe) -> None:
    RECIPES.register(name)(lambda: validate(recipe))


def get_recipe(name: str, **overrides) -> Recipe:
    recipe = RECIPES.get(name)()
    return recipe.replace(**overrides) if overrides else recipe


def list_recipes() -> list[str]:
    return RECIPES.names()


# --- Paper 1 (Kim et al. 2021), official code jhoon-oh/kd_data -------------------------------
_recipe("kl_vs_mse_cifar", Recipe(
    epochs=200, batch_size=128, lr=0.1, nesterov=True, momentum=0.9,
    weight_decay=5e-4,            # code; the supplement says 1e-4
    wd_exempt_bn_bias=True,       # code: no decay on BN and bias
    schedule="multistep", milestones=(100, 150), gamma=0.1,
    source="paper 1 official code: WRN, 200 epochs, nesterov lr 0.1, x0.1 at 100/150, batch 128"))

# --- Paper 2 (Cui et al. 2024): the mdistiller CIFAR-100 protocol ----------------------------
_recipe("mdistiller_cifar", Recipe(
    epochs=240, batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4,
    schedule="multistep", milestones=(150, 180, 210), gamma=0.1,
    source="paper 2 / mdistiller CIFAR-100: 240 epochs, batch 64, lr 0.05, x0.1 at 150/180/210 (CE weight and "
           "KD warm-up belong to each method: reproduce/methods.py)"))
_recipe("mdistiller_cifar_light", Recipe(
    epochs=240, batch_size=64, lr=0.01, momentum=0.9, weight_decay=5e-4,
    schedule="multistep", milestones=(150, 180, 210), gamma=0.1,
    source="paper 2 / mdistiller CIFAR-100 for MobileNet/ShuffleNet students: lr 0.01"))
_recipe("imagenet", Recipe(
    epochs=100, batch_size=512, lr=0.2, momentum=0.9, weight_decay=1e-4,
    schedule="multistep", milestones=(30, 60, 90), gamma=0.1,
    source="paper 2 ImageNet: 100 epochs, lr 0.2, x0.1 every 30, batch 512, wd 1e-4"))

# --- Mini profile: mnist1d, 1000 training samples (the mini-profile search notes, re-measured here) ---
_recipe("mini_teacher", Recipe(
    epochs=40, batch_size=128, lr=1e-2, optimizer="adam", weight_decay=0.0,
    schedule="cosine", ce_weight=0.0, kd_weight=1.0,
    source="mini-notes: Adam lr 1e-2, cosine per step to 0, batch 128, 40 epochs"))
_recipe("mini_student", Recipe(
    epochs=300, batch_size=128, lr=3e-3, optimizer="adam", weight_decay=0.0,
    schedule="cosine", ce_weight=0.0, kd_weight=1.0,
    eval_every=5,   # measured: the 5001-signal test pass costs ~2x a CE training epoch; last 10 still every epoch
    source="mini-notes: Adam lr 3e-3, cosine per step to 0, batch 128, 300 epochs (long schedule matters)"))
# Tests: seconds, not minutes.
_recipe("smoke", Recipe(
    epochs=2, batch_size=64, lr=1e-2, optimizer="adam", weight_decay=0.0, schedule="cosine",
    source="smoke scale for tests"))

# --- Many-class mini profile `mini100`: mnist1d_hier (100 classes, 8000 training signals) -----
# Searched on a validation split carved from the training set (reproduce/many_class.py, its
# `search` section and committed table results/many_class/mini100/); the test set never chose them.
_recipe("mini100_teacher", Recipe(
    epochs=40, batch_size=128, lr=3e-3, optimizer="adam", weight_decay=0.0, schedule="cosine",
    source="many-class mini: Adam, cosine per step to 0, batch 128; lr and epochs searched on validation"))
_recipe("mini100_student", Recipe(
    epochs=100, batch_size=128, lr=1e-2, optimizer="adam", weight_decay=0.0, schedule="cosine",
    eval_every=5,   # as mini_student: the test pass of every epoch was ~a fifth of a group's time; last 10 every epoch
    source="many-class mini: Adam, cosine per step to 0, batch 128; lr and epochs searched on validation"))
