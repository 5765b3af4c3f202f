"""Exact, faster CPU replacements for layers whose training kernels are slow on small tensors.

`accelerate(model)` swaps the class of eligible submodules in place (no parameters or buffers
change, so state dicts, checksums and checkpoints are untouched) and returns how many it swapped:

- `nn.MaxPool1d(2)` (kernel 2, stride 2, no padding/dilation/ceil mode/indices): while
  training, torch computes it through `max_pool2d_with_indices`, measured 3.4x slower (forward +
  backward, (128, 32, 40), one thread) than `MaxPool1dFast`: the winner of each pair from two
  strided comparisons (torch's CPU rule `val > max || isnan(val)`: ties go to the first of the
  pair, a NaN wins), then `gather`, whose backward scatters the gradient into zeros. The same
  values and the same gradients, bit for bit (a max moves values, it does not round; each input
  receives at most one gradient entry, added to zero, as in torch's own backward).
- `nn.AdaptiveMaxPool1d(1)` (the global max pool of the mini100 models): `GlobalMaxPool1dFast`,
  the first maximum of each row (`amax`, then the first position equal to it), gathered. Equal
  to torch's for finite inputs; with a NaN in a row torch picks the last NaN and this the first
  maximum or NaN position, the output is NaN either way (and the run stops as diverged).

Without autograd (evaluation, teachers) MaxPool1dFast calls torch's own forward and
GlobalMaxPool1dFast is `amax` (torch's adaptive_max_pool2d kernel: 3.9 ms for a (1000, 32, 10)
evaluation batch here, several times `amax`; the values are the same). Both work under
`torch.func.vmap` (stacked students, engine/stacked.py). The trainer applies them to student
models on the CPU (CUDA keeps torch's kernels). Tested equal to torch's modules, values and
gradients (tests/test_stacked_bn.py).
"""
from __future__ import annotations

import torch
from torch import nn

_BASES: dict = {}


def _base(n: int, device) -> torch.Tensor:
    key = (n, str(device))
    base = _BASES.get(key)
    if base is None:
        base = _BASES[key] = torch.arange(0, 2 * n, 2, device=device)
    return base


def max_pool2(x: torch.Tensor) -> torch.Tensor:
    """max_pool1d(x, 2) over the last dim, exactly (values and gradient), without indices kernels."""
    n = x.shape[-1] // 2
    with torch.no_grad():
        a, b = x[..., 0:2 * n:2], x[..., 1:2 * n:2]
        idx = ((b > a) | b.isnan()) + _base(n, x.device)      # bool + int64: the winner's position
    return x.gather(-1, idx)


def global_max(x: torch.Tensor) -> torch.Tensor:
    """adaptive_max_pool1d(x, 1): the first maximum of each row (keepdim)."""
    with torch.no_grad():
        idx = (x == x.amax(-1, keepdim=True)).int().argmax(-1, keepdim=True)   # argmax: the first
    return x.gather(-1, idx)


class MaxPool1dFast(nn.MaxPool1d):
    def forward(self, x):
        return max_pool2(x) if torch.is_grad_enabled() else super().forward(x)


class GlobalMaxPool1dFast(nn.AdaptiveMaxPool1d):
    def forward(self, x):
        if torch.is_grad_enabled():
            return global_max(x)
        return x.amax(-1, keepdim=True)      # the same values (a NaN row gives NaN in both)


def _size(v):
    return v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v


def _eligible_pool(m) -> bool:
    return (type(m) is nn.MaxPool1d and _size(m.kernel_size) == 2 and _size(m.stride) in (2, None)
            and _size(m.padding) == 0 and _size(m.dilation) == 1 and not m.ceil_mode and not m.return_indices)


def _eligible_global(m) -> bool:
    return type(m) is nn.AdaptiveMaxPool1d and _size(m.output_size) == 1 and not m.return_indices


def accelerate(model: nn.Module) -> int:
    """Swap eligible submodules of `model` for their exact fast versions; returns how many."""
    swapped = 0
    for m in model.modules():
        if _eligible_pool(m):
            m.__class__ = MaxPool1dFast
            swapped += 1
        elif _eligible_global(m):
            m.__class__ = GlobalMaxPool1dFast
            swapped += 1
    return swapped
