"""Slow reference implementations, written differently from the fast losses on purpose.

For the tests (values and autograd gradients in float64) and for `make bench`:
- `*_loop_reference`: explicit per-sample loops in float64, probabilities by a direct
  max-shifted softmax and KL as sum p * log(p / q). Differentiable (torch ops), slow.
- `dkl_pairwise_reference` / `ikl_pairwise_reference`: the B x C x C pairwise form, a
  faithful re-implementation of the official computation of jiequancui/DKL (IKL_KD /
  GKL_KD `dkl_loss`): Delta tensors (B, C, C) of teacher and student, outer-product weights,
  0.25 * sum / B (or / weight sum for GKL). These keep the input dtype and device, so the
  benchmark can time them against the O(B*C) losses on a GPU.
- `kl_inf_official_grad`: the gradient paper 1's official code injects at tau = inf.
- `class_prior_reference`: the IKL class prior from lists of batches, by loops.
"""
from __future__ import annotations

import torch


def _softmax_direct(x: torch.Tensor) -> torch.Tensor:
    e = torch.exp(x - x.max())
    return e / e.sum()


def _kl_direct(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """sum_j p_j log(p_j / q_j), with 0 log 0 = 0."""
    terms = torch.where(p > 0, p * torch.log(p / q), torch.zeros_like(p))
    return terms.sum()


def ce_loop_reference(zs, targets):
    zs = zs.double()
    out = [-torch.log(_softmax_direct(zs[b])[targets[b]]) for b in range(zs.shape[0])]
    return torch.stack(out).mean()


def kl_loop_reference(zs, zt, tau: float):
    """tau^2 KL(softmax(zt/tau) || softmax(zs/tau)), per-sample loop, float64."""
    zs, zt = zs.double(), zt.double()
    out = []
    for b in range(zs.shape[0]):
        p = _softmax_direct(zt[b] / tau)
        q = _softmax_direct(zs[b] / tau)
        out.append(tau * tau * _kl_direct(p, q))
    return torch.stack(out).mean()


def kl_inf_loop_reference(zs, zt):
    """(1/(2C)) sum_j (d_j - mean d)^2, d = zs - zt, by explicit sums over classes."""
    zs, zt = zs.double(), zt.double()
    batch, num_classes = zs.shape
    out = []
    for b in range(batch):
        d = [zs[b, j] - zt[b, j] for j in range(num_classes)]
        mean = sum(d) / num_classes
        out.append(sum((dj - mean) ** 2 for dj in d) / (2 * num_classes))
    return torch.stack(out).mean()


def kl_inf_official_grad(zs, zt):
    """Paper 1 official tau = inf student gradient: (d - mean_j d) / (C * B), d = zs - zt."""
    d = (zs - zt).double()
    batch, num_classes = d.shape
    return (d - d.mean(dim=1, keepdim=True)) / (num_classes * batch)


def mse_loop_reference(zs, zt):
    zs, zt = zs.double(), zt.double()
    batch, num_classes = zs.shape
    total = sum((zs[b, j] - zt[b, j]) ** 2 for b in range(batch) for j in range(num_classes))
    return total / (batch * num_classes)


def _soft_ce_direct(zs, zt, tau):
    """-sum_j S(p_t) log p_s per sample, p by direct softmax (no log_softmax)."""
    pt = torch.softmax(zt.detach() / tau, dim=1)
    e = torch.exp(zs / tau - (zs / tau).max(dim=1, keepdim=True).values)
    ps = e / e.sum(dim=1, keepdim=True)
    return -(pt * torch.log(ps)).sum(dim=1)


def _pair_deltas(z):
    """Delta^{jk} = z_j - z_k as a (B, C, C) tensor."""
    return z.unsqueeze(2) - z.unsqueeze(1)


def dkl_pairwise_reference(zs, zt, tau: float, alpha: float = 1.0, beta: float = 1.0):
    """Paper-2 DKL in our tau^2 convention (see losses.dkl), B x C x C pairwise form."""
    w = torch.softmax(zt.detach() / tau, dim=1)
    pair_w = w.unsqueeze(2) * w.unsqueeze(1)
    diff = _pair_deltas(zt) - _pair_deltas(zs.detach())
    wmse = 0.25 * (pair_w * diff.pow(2)).sum(dim=(1, 2))
    sce = tau * tau * _soft_ce_direct(zs, zt, tau)
    return (alpha * wmse + beta * sce).mean()


def ikl_pairwise_reference(
    zs,
    zt,
    targets,
    tau: float,
    T2: float = 100.0,
    alpha: float = 1.0,
    beta: float = 1.0,
    prior: torch.Tensor | None = None,
    gamma: float | None = None,
    break_asymmetry: bool = True,
):
    """The official IKL_KD / GKL_KD computation (paper names: alpha wMSE, beta soft CE).

    prior: (C, C) class prior (GI on) or None (sample weights softmax(zt/T2)).
    gamma: None for IKL (divide by B), a float for GKL (weights ** gamma, divide by their sum).
    """
    zt = zt.detach()
    num_classes = zs.shape[1]
    delta_t = _pair_deltas(zt)
    delta_s = _pair_deltas(zs if break_asymmetry else zs.detach())
    if prior is not None:
        onehot = torch.nn.functional.one_hot(targets, num_classes).to(prior.dtype)
        s = onehot @ prior
    else:
        s = torch.softmax(zt / T2, dim=1)
    if gamma is not None:
        s = s.pow(gamma)
    pair_w = (s.view(-1, num_classes, 1) @ s.view(-1, 1, num_classes)).to(zs.dtype)
    total = (delta_t - delta_s).pow(2) * pair_w
    norm = zs.shape[0] if gamma is None else pair_w.sum()
    wmse = 0.25 * total.sum() / norm
    sce = -(torch.softmax(zt / tau, dim=-1) * torch.log_softmax(zs / tau, dim=-1)).sum(1).mean()
    return alpha * wmse + beta * sce


def dkd_loop_reference(zs, zt, targets, tau: float, alpha: float = 1.0, beta: float = 8.0):
    """DKD by probability-space renormalisation (p_j / (1 - p_t)), per-sample loop, float64."""
    zs, zt = zs.double(), zt.double()
    out = []
    for b in range(zs.shape[0]):
        t = int(targets[b])
        ps, pt = _softmax_direct(zs[b] / tau), _softmax_direct(zt[b] / tau)
        bs = torch.stack([ps[t], 1 - ps[t]])
        bt = torch.stack([pt[t], 1 - pt[t]])
        keep = [j for j in range(zs.shape[1]) if j != t]
        hs = ps[keep] / (1 - ps[t])
        ht = pt[keep] / (1 - pt[t])
        out.append(tau * tau * (alpha * _kl_direct(bt, bs) + beta * _kl_direct(ht, hs)))
    return torch.stack(out).mean()


def class_prior_reference(teacher_batches, target_batches, num_classes: int, T2: float):
    """Row y: mean of softmax(zt/T2) over samples of class y (None for an unseen class)."""
    rows: list[list[torch.Tensor]] = [[] for _ in range(num_classes)]
    for zt, y in zip(teacher_batches, target_batches):
        for b in range(zt.shape[0]):
            rows[int(y[b])].append(_softmax_direct(zt[b].double() / T2))
    return [torch.stack(r).mean(dim=0) if r else None for r in rows]
