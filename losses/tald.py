"""`tald`: teacher-logit noise wrapper (paper 3, TALD-KD, Inf. Process. & Manag. 2025; no public code).

Paper 3: E[ CE(y, f_S(x)) + lambda * L_KD(f_S(x), z_T + eps) ], random noise eps on the teacher
logits read as an implicit ensemble of teachers around z_T. Here: any registered base loss
(`base`, default "kl", its own hyperparameters forwarded, e.g. tau, alpha) evaluated on
(z_s, z_t + eps, y); a fresh eps is drawn at every call (every batch).

Everything about eps is OUR choice (the paper publishes no noise law, scale or schedule):
- noise "gaussian": eps ~ N(0, s^2); "uniform": eps ~ U(-sqrt(3) s, sqrt(3) s), which has the
  same standard deviation s, so a given scale means the same spread for both laws.
- noise "multiplicative" (the "noisy teacher" of Sau and Balasubramanian, 2016): z_t (1 + s n),
  n ~ N(0, 1) per logit: the noise of each logit is proportional to it, so this law is relative
  by construction (scale_mode must stay "relative").
- noise "mixture" (the synthetic teachers of TeKAP, ICLR 2025: 0.9 z + 0.1 n): (1 - s) z_t + s n,
  n ~ N(0, 1) ("absolute", TeKAP exactly at s = 0.1) or n ~ N(0, std_j(z_t)^2) ("relative").
- scale_mode "absolute": s = scale; "relative": s = scale * std_j(z_t,b) per sample (population
  std over the classes of the clean teacher logits, no gradient through it) for the additive laws.
- schedule of the scale over training progress p in [0, 1] (set by `set_progress`):
  "constant" 1; "linear" 1 - p; "cosine" (1 + cos(pi p)) / 2 (full at p = 0, zero at p = 1).
- share: the fraction of batches that get noise (Sau and Balasubramanian perturb a random share
  of the batches); each call draws one uniform number from the same generator to decide.
- lambda and the CE term are the base loss's and the recipe's business (e.g. recipe ce_weight 1
  and kd_weight lambda, as the paper's objective CE + lambda KD).

Randomness: a private torch.Generator seeded with `seed`, created on the device of the first
logits it sees (later calls on another device draw there and move the noise). Its state is in
`state_dict()`, so a resumed run draws exactly the noise the uninterrupted one would have
(on the same device type; across device types the stream restarts from `seed`, with a warning).
No noise is drawn at all when scale == 0, so then the loss equals the base loss exactly.
`observe_teacher` forwards the CLEAN teacher logits, `end_epoch`/`set_progress` forward too.
"""
from __future__ import annotations

import math
import warnings

import torch

from common import UserError
from losses.base import (
    LOSSES,
    DistillLoss,
    check_choice,
    check_int,
    check_nonnegative,
    check_unit,
    format_value,
    loss_defaults,
)

NOISES = ("gaussian", "uniform", "multiplicative", "mixture")
SCALE_MODES = ("absolute", "relative")
SCHEDULES = ("constant", "linear", "cosine")


def schedule_factor(schedule: str, progress: float) -> float:
    """Multiplier of the noise scale at training progress p in [0, 1]."""
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}")


def draw_noise(shape, noise: str, generator: torch.Generator, device, dtype=torch.float32) -> torch.Tensor:
    """Unit-std noise: standard normal, or uniform on [-sqrt(3), sqrt(3)]."""
    if noise == "gaussian":
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if noise == "uniform":
        u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
        return (2.0 * u - 1.0) * math.sqrt(3.0)
    raise ValueError(f"unknown noise {noise!r}")


@LOSSES.register("tald")
class TALD(DistillLoss):
    """Base loss on noisy teacher logits z_t + eps; see the module docstring for the noise law."""

    name = "tald"

    def __init__(
        self,
        base: str = "kl",
        noise: str = "gaussian",
        scale: float = 0.1,
        scale_mode: str = "relative",
        schedule: str = "constant",
        seed: int = 0,
        share: float = 1.0,
        **base_hparams,
    ):
        if base == "tald":
            raise UserError("loss 'tald': base must be another loss, not 'tald'")
        if not isinstance(base, str) or base not in LOSSES:
            raise UserError(f"loss 'tald': base must be one of {', '.join(n for n in LOSSES.names() if n != 'tald')}; got {base!r}")
        noise = check_choice("tald", "noise", noise, NOISES)
        scale = check_nonnegative("tald", "scale", scale)
        scale_mode = check_choice("tald", "scale_mode", scale_mode, SCALE_MODES)
        schedule = check_choice("tald", "schedule", schedule, SCHEDULES)
        seed = check_int("tald", "seed", seed)
        share = check_unit("tald", "share", share)
        if share == 0.0:
            raise UserError("loss 'tald': share must be in (0, 1], got 0 (no batch would get noise; use scale 0)")
        if noise == "multiplicative" and scale_mode != "relative":
            raise UserError("loss 'tald': multiplicative noise is relative to each logit; scale_mode must be 'relative'")
        try:
            self.base = LOSSES.build(base, **base_hparams)
        except UserError as e:
            own = "base, noise, scale, scale_mode, schedule, seed"
            raise UserError(f"loss 'tald' (its own hyperparameters: {own}); base: {e}") from None
        super().__init__(base=base, noise=noise, scale=scale, scale_mode=scale_mode, schedule=schedule,
                         seed=seed, share=share, **self.base.hparams)
        self.noise, self.scale, self.scale_mode, self.schedule, self.seed = noise, scale, scale_mode, schedule, seed
        self.share = share
        self.uses_teacher = self.base.uses_teacher
        self.generator: torch.Generator | None = None
        self._pending_rng: tuple[str, torch.Tensor] | None = None  # loaded before the generator existed

    # --------------------------------------------------------------- noise
    def current_scale(self) -> float:
        """The scale at the current progress (before the relative per-sample std)."""
        return self.scale * schedule_factor(self.schedule, self.progress)

    def _generator_for(self, device: torch.device) -> torch.Generator:
        if self.generator is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            if self._pending_rng is not None:
                saved_type, state = self._pending_rng
                if saved_type == gen.device.type:
                    gen.set_state(state)
                else:
                    warnings.warn(
                        f"tald: RNG state saved on {saved_type} cannot be restored on {gen.device.type}; "
                        f"the noise stream restarts from seed {self.seed}",
                        stacklevel=3,
                    )
                self._pending_rng = None
            self.generator = gen
        return self.generator

    def sample_noise(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        """The additive change to these (B, C) teacher logits, z_t' - z_t, under the noise law
        (advances the generator; zeros for a batch outside the `share`)."""
        zt = teacher_logits.detach()
        gen = self._generator_for(zt.device)
        if self.share < 1.0 and torch.rand((), generator=gen, device=gen.device).item() >= self.share:
            return torch.zeros_like(zt)
        law = "gaussian" if self.noise in ("multiplicative", "mixture") else self.noise
        eps = draw_noise(zt.shape, law, gen, gen.device, torch.float32).to(device=zt.device, dtype=zt.dtype)
        s = self.current_scale()
        if self.noise == "multiplicative":
            return zt * (s * eps)
        spread = zt.std(dim=1, correction=0, keepdim=True) if self.scale_mode == "relative" else 1.0
        if self.noise == "mixture":
            return s * (eps * spread - zt)
        return eps * (s * spread)

    def forward(self, zs, zt, targets):
        if self.scale > 0 and zt is not None:  # zt is None only for a base that ignores the teacher
            zt = zt + self.sample_noise(zt)
        loss = self.base(zs, zt, targets)
        self.terms = dict(self.base.terms)
        return loss

    def label(self) -> str:
        """'TALD <own non-default settings> on <base label>', e.g. 'TALD scale=0.5 on KL tau=4'."""
        own = ("noise", "scale", "scale_mode", "schedule", "seed", "share")
        defaults = loss_defaults(type(self))
        parts = ["TALD"] + [f"{k}={format_value(self.hparams[k])}" for k in own
                            if k == "scale" or self.hparams[k] != defaults[k]]
        return " ".join(parts + ["on", self.base.label()])

    # --------------------------------------------------------------- hooks
    def set_progress(self, p: float) -> None:
        super().set_progress(p)
        self.base.set_progress(p)

    def observe_teacher(self, teacher_logits, targets) -> None:
        self.base.observe_teacher(teacher_logits, targets)

    def end_epoch(self) -> None:
        self.base.end_epoch()

    def state_dict(self) -> dict:
        if self.generator is not None:
            rng = {"device_type": self.generator.device.type, "state": self.generator.get_state().clone()}
        elif self._pending_rng is not None:
            rng = {"device_type": self._pending_rng[0], "state": self._pending_rng[1].clone()}
        else:
            rng = None  # nothing drawn yet: the stream starts from `seed`
        return {"rng": rng, "progress": self.progress, "base": self.base.state_dict()}

    def load_state_dict(self, d: dict) -> None:
        unknown = set(d) - {"rng", "progress", "base"}
        if unknown:
            raise ValueError(f"tald state has unknown keys {sorted(unknown)}")
        super().set_progress(float(d.get("progress", 0.0)))
        self.base.set_progress(self.progress)
        self.base.load_state_dict(d.get("base", {}))
        rng = d.get("rng")
        self.generator = None
        self._pending_rng = None if rng is None else (rng["device_type"], rng["state"].clone())
