"""Shared inputs of the loss tests: seeded logits and targets, autograd value and gradients."""
import torch

F64 = torch.float64


def logits(batch, classes, scale=3.0, seed=0, dtype=F64):
    """Seeded N(0, scale^2) logits, drawn in float64 and then cast (same values for any dtype)."""
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(batch, classes, generator=g, dtype=F64)).to(dtype)


def targets_for(batch, classes, seed=0):
    return torch.randint(0, classes, (batch,), generator=torch.Generator().manual_seed(seed))


def value_and_grads(fn, zs, zt):
    """fn(zs, zt) -> scalar; returns (value, d/dzs, d/dzt) via autograd, fresh leaves."""
    zs = zs.detach().clone().requires_grad_(True)
    zt = zt.detach().clone().requires_grad_(True)
    value = fn(zs, zt)
    gs, gt = torch.autograd.grad(value, (zs, zt), allow_unused=True)
    return value.detach(), gs, gt
