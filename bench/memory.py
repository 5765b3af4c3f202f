"""Peak bytes of live tensors during a computation, counted exactly through a TorchDispatchMode.

    with TensorMemory() as mem:
        loss(zs, zt, y).backward()
    mem.peak_bytes        # most bytes held at once by tensors created inside the block

Every operator's outputs are recorded by storage; after each operator the storages still alive
are summed (a storage freed by Python drops out at once, by reference counting). Counted:
every storage created inside the block (forward results, tensors autograd saves, backward
temporaries, the gradient accumulated into `.grad`). Not counted: tensors that existed before
(the inputs) and views of them and scratch memory a kernel allocates internally without returning it. Exact
and deterministic, unlike resident memory (RSS), which the allocator's reuse of freed heap
pages makes a lower bound. Autograd runs the backward of CPU tensors on the calling thread,
where the mode is active.
"""
from __future__ import annotations

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class TensorMemory(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak_bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # a view or in-place result of an operand shares its storage: new memory only if fresh
        operands = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs or {}))
                    if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                st = t.untyped_storage()
                key = st.data_ptr()
                if key in operands:
                    continue
                ref = self.live.get(key)
                if ref is None or ref[0].expired():
                    self.live[key] = (StorageWeakRef(st), st.nbytes())
        self._sample()
        return out

    def _sample(self) -> None:
        total = 0
        for key in list(self.live):
            ref, nbytes = self.live[key]
            if ref.expired():
                del self.live[key]
            else:
                total += nbytes
        self.peak_bytes = max(self.peak_bytes, total)


def peak_floats(fn, numel: int, itemsize: int = 4) -> float:
    """Peak live tensor memory of `fn()` in units of `numel` elements of `itemsize` bytes."""
    with TensorMemory() as mem:
        fn()
    return mem.peak_bytes / (numel * itemsize)
