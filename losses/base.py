"""The `DistillLoss` base class, the loss registry and hyperparameter checks.

A loss is called as `loss(student_logits, teacher_logits, targets)` and returns a scalar
(mean over the batch), differentiable in the student logits. `__call__` checks shapes,
upcasts float16/bfloat16 inputs to float32 (float64 stays float64, so that tests can compare
against float64 references), switches autocast off, and hands the tensors to `forward`.

Hooks the engine calls, all no-ops here:
- `set_progress(p)`: fraction of training done, in [0, 1] (stored in `self.progress`).
- `observe_teacher(teacher_logits, targets)`: once per training batch.
- `end_epoch()`: at each epoch boundary.
- `state_dict()` / `load_state_dict(d)`: everything needed for an exact resume.

After each call `self.terms` maps the names of the loss's parts to detached scalar
tensors (for logging, e.g. `{"wmse": ..., "soft_ce": ...}`); no `.item()` is taken here, so
logging them costs a device sync only when the caller reads them.
"""
from __future__ import annotations

import abc
import contextlib
import math
import numbers

import torch

from common import Registry, UserError

LOSSES = Registry("loss")

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps")


class DistillLoss(abc.ABC):
    """Base of every registered loss; subclasses implement `forward(zs, zt, targets)`."""

    name: str = ""
    uses_teacher: bool = True
    short: str = ""                  # display name in labels (default: the name in capitals)
    always_shown: tuple = ()         # hyperparameters every label shows, even at their defaults

    def __init__(self, **hparams):
        self.hparams = dict(hparams)  # the resolved hyperparameters, for configs and logs
        self.progress = 0.0
        self.terms: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ call
    def __call__(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        zs = _as_float(student_logits, "student_logits")
        if zs.dim() != 2 or zs.shape[1] < 2:
            raise ValueError(f"student_logits must be (B, C) with C >= 2, got shape {tuple(zs.shape)}")
        if teacher_logits is None:
            if self.uses_teacher:
                raise ValueError(f"loss '{self.name}' needs teacher_logits")
            zt = None
        else:
            zt = _as_float(teacher_logits, "teacher_logits")
            if zt.shape != zs.shape:
                raise ValueError(
                    f"teacher_logits shape {tuple(zt.shape)} != student_logits shape {tuple(zs.shape)}"
                )
            if zt.dtype != zs.dtype:
                dtype = torch.promote_types(zs.dtype, zt.dtype)
                zs, zt = zs.to(dtype), zt.to(dtype)
        if not isinstance(targets, torch.Tensor) or targets.shape != (zs.shape[0],):
            raise ValueError(f"targets must be a ({zs.shape[0]},) tensor of class indices")
        if targets.dtype.is_floating_point or targets.dtype == torch.bool or targets.is_complex():
            raise ValueError(f"targets must hold integer class indices, got dtype {targets.dtype}")
        targets = targets.long()
        device = zs.device.type
        ctx = (
            torch.autocast(device_type=device, enabled=False)
            if device in _AUTOCAST_DEVICES
            else contextlib.nullcontext()
        )
        with ctx:
            return self.forward(zs, zt, targets)

    @abc.abstractmethod
    def forward(self, zs: torch.Tensor, zt: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor:
        """zs, zt: (B, C) float32/float64; targets: (B,) int64. Returns the batch-mean loss."""

    # ----------------------------------------------------------------- hooks
    def set_progress(self, p: float) -> None:
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"progress must be in [0, 1], got {p}")
        self.progress = p

    def observe_teacher(self, teacher_logits, targets) -> None:
        return None

    def end_epoch(self) -> None:
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, d: dict) -> None:
        if d:
            raise ValueError(f"loss '{self.name}' keeps no state, got keys {sorted(d)}")

    # ----------------------------------------------------------------- labels
    def label(self) -> str:
        """Short label for tables and logs: the display name, then `key=value` for every
        hyperparameter in `always_shown` or away from its default (e.g. 'KL tau=20 alpha=0.5')."""
        defaults = loss_defaults(type(self))
        parts = [self.short or self.name.upper()]
        for key, value in self.hparams.items():
            if key in self.always_shown or key not in defaults or value != defaults[key]:
                parts.append(f"{key}={format_value(value)}")
        return " ".join(parts)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"


def loss_defaults(cls) -> dict:
    """Default hyperparameters of a loss class, read off its constructor's signature."""
    import inspect

    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params
            if p.name != "self" and p.default is not inspect.Parameter.empty}


def format_value(value) -> str:
    """inf as 'inf', numbers with :g, anything else as str."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    return "inf" if math.isinf(value) else f"{value:g}"


def _as_float(x, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{what} must be a tensor, got {type(x).__name__}")
    if x.dtype in _LOW_PRECISION:
        return x.float()
    if x.dtype in (torch.float32, torch.float64):
        return x
    raise ValueError(f"{what} must be a floating tensor, got dtype {x.dtype}")


def cross_entropy(zs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Hard-label cross-entropy -log softmax(zs)[y] (log-softmax based, finite for huge logits)."""
    return torch.nn.functional.cross_entropy(zs, targets, reduction=reduction)


def reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


# ------------------------------------------------------ hyperparameter checks
# Each raises UserError naming the loss, the hyperparameter and what is allowed.

def _real(loss: str, name: str, value, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"loss '{loss}': {name} must be {allowed}, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise UserError(f"loss '{loss}': {name} must be {allowed}, got nan")
    return value


def check_positive(loss: str, name: str, value, allow_inf: bool = False) -> float:
    allowed = "a number > 0 or float('inf')" if allow_inf else "a finite number > 0"
    v = _real(loss, name, value, allowed)
    if v <= 0 or (math.isinf(v) and not allow_inf):
        raise UserError(f"loss '{loss}': {name} must be {allowed}, got {value!r}")
    return v


def check_nonnegative(loss: str, name: str, value) -> float:
    allowed = "a finite number >= 0"
    v = _real(loss, name, value, allowed)
    if v < 0 or math.isinf(v):
        raise UserError(f"loss '{loss}': {name} must be {allowed}, got {value!r}")
    return v


def check_unit(loss: str, name: str, value) -> float:
    allowed = "a number in [0, 1]"
    v = _real(loss, name, value, allowed)
    if not 0.0 <= v <= 1.0:
        raise UserError(f"loss '{loss}': {name} must be {allowed}, got {value!r}")
    return v


def check_bool(loss: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"loss '{loss}': {name} must be True or False, got {value!r}")
    return value


def check_int(loss: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserError(f"loss '{loss}': {name} must be an integer, got {value!r}")
    return int(value)


def check_choice(loss: str, name: str, value, options: tuple[str, ...]) -> str:
    if value not in options:
        raise UserError(f"loss '{loss}': {name} must be one of {', '.join(options)}; got {value!r}")
    return value
