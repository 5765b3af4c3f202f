"""Data-parallel training over processes (torchrun): one process per GPU, or per CPU rank.

    python -m torch.distributed.run --nproc_per_node 2 -m reproduce.train --dataset ... --model ...
    torchrun --nproc_per_node 8 -m reproduce.train --dataset imagenet --model resnet18 ...

Nothing to switch on: when torchrun's environment says WORLD_SIZE > 1, the engine
initialises `torch.distributed` from it (env://; nccl on CUDA, each rank on cuda:LOCAL_RANK;
gloo on the CPU) and trains every run of the group data-parallel:

- Batches: every rank draws the same global permutation and random views (same epoch
  generator as one process) and takes a contiguous slice of each global batch
  (`data.splits.shard_slice`): rank r of W gets rows [r*n/W, (r+1)*n/W). The global batch
  size stays the recipe's; a rank sees batch_size / W samples per step (the slices differ
  by at most one row when W does not divide the batch).
- Gradients: each student is wrapped in DistributedDataParallel (gradients averaged over
  ranks during backward). Each rank's loss is multiplied by W * n_r / n (n_r its rows, n the
  global batch), so the averaged gradient is the gradient of the global batch mean even when
  the last batch splits unevenly: the update equals one process's on the global batch, to
  float rounding, for losses that are batch means of per-sample terms and models without
  batch statistics (BatchNorm normalises per rank; GKL's weight-sum normaliser and TALD's
  random draws are per rank too).
- Loss state: `observe_teacher` (the IKL class prior) sees the teacher logits of the global
  batch (all-gathered in rank order), so every rank holds the one-process prior.
- Metrics: step losses (the global batch mean) and correct counts are summed over ranks;
  test evaluation runs on rank 0 alone (the other ranks wait at the next collective).
- Files: rank 0 alone creates and writes run directories, checkpoints, teacher caches and
  label-noise files; the other ranks wait for it (`rank_zero_first`) and then only read.
  The other ranks print nothing.
- Not with distributed training: stacked students (`stack=True` is refused, "auto" falls back
  to the per-model loop) and torch.compile.
"""
from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int] | None:
        return (self.rank, self.world) if self.enabled else None

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    @contextlib.contextmanager
    def rank_zero_first(self):
        """Rank 0 runs the block first (it may write files); the others run it after."""
        if self.enabled and not self.is_main:
            dist.barrier()
        yield
        if self.enabled and self.is_main:
            dist.barrier()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def all_gather_rows(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's (n_r, ...) tensor in rank order (n_r may differ)."""
        if not self.enabled:
            return t
        n = torch.tensor([t.shape[0]], device=t.device)
        sizes = [torch.zeros_like(n) for _ in range(self.world)]
        dist.all_gather(sizes, n)
        sizes = [int(s) for s in sizes]
        most = max(sizes)
        padded = torch.zeros((most, *t.shape[1:]), dtype=t.dtype, device=t.device)
        padded[: t.shape[0]] = t
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])


SINGLE = DistContext()


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def context(device_request: str = "auto") -> DistContext:
    """The process group of this process (initialised from torchrun's environment on first
    use), or SINGLE when not launched with WORLD_SIZE > 1."""
    if env_world_size() <= 1:
        return SINGLE
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and not str(device_request).startswith("cpu")
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        atexit.register(shutdown)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank)


def resolve_device(device_request: str, ctx: DistContext) -> str:
    """Each rank's device: cuda:LOCAL_RANK for "auto"/"cuda" under CUDA, else the request."""
    if ctx.enabled and str(device_request) in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{ctx.local_rank}"
    return device_request


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
