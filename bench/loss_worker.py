"""One loss timing in a fresh process: time per forward+backward and peak extra memory.

    python -m bench.loss_worker dkl fast 256 1000 --repeats 3

impl: `fast` the registered loss (fused autograd.Functions of losses/fused.py for kl, dkl,
ikl), `autograd` the same loss through plain autograd (losses.kl.kl_div_loss,
losses.dkl.dkl_loss, losses.ikl.ikl_loss: what the registered losses ran before the fused
versions), `pairwise` the B x C x C reference (dkl, ikl).

Prints one JSON line: {"seconds": median s per forward+backward, "peak_mb": peak resident
memory above the level just before the first call (inputs already allocated), MiB,
"tensor_bc": (not for pairwise) the exact peak of live tensor memory of one forward+backward,
counted by bench/memory.py, in units of B*C float32 (the gradient of z_s included)}.
A fresh process per measurement keeps ru_maxrss (a lifetime peak) specific to one loss.
"""
import argparse
import json
import resource
import statistics
import time

import torch

from bench.memory import peak_floats
from losses import build_loss
from losses.dkl import dkl_loss
from losses.ikl import ikl_loss
from losses.kl import kl_div_loss
from losses.reference import dkl_pairwise_reference, ikl_pairwise_reference


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def make_call(loss: str, impl: str):
    """fn(zs, zt, y) -> scalar for one (loss, implementation); tau 4, ikl T2 100 (defaults)."""
    if impl == "fast":
        return build_loss(loss, tau=4.0)
    if impl == "autograd":
        if loss == "kl":
            return lambda zs, zt, y: kl_div_loss(zs, zt, 4.0)
        if loss == "dkl":
            return lambda zs, zt, y: dkl_loss(zs, zt, 4.0)
        return lambda zs, zt, y: ikl_loss(zs, zt, torch.softmax(zt / 100.0, dim=1), 4.0)
    if loss == "dkl":
        return lambda zs, zt, y: dkl_pairwise_reference(zs, zt, 4.0)
    if loss == "ikl":
        return lambda zs, zt, y: ikl_pairwise_reference(zs, zt, y, 4.0, T2=100.0)
    raise SystemExit("pairwise: dkl and ikl only")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("loss", choices=["kl", "dkl", "ikl"])
    p.add_argument("impl", choices=["fast", "autograd", "pairwise"])
    p.add_argument("batch", type=int)
    p.add_argument("classes", type=int)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    zs = (3 * torch.randn(a.batch, a.classes, generator=gen)).requires_grad_(True)
    zt = 3 * torch.randn(a.batch, a.classes, generator=gen)
    y = torch.randint(0, a.classes, (a.batch,), generator=gen)
    fn = make_call(a.loss, a.impl)
    call = lambda: fn(zs, zt, y)                                               # noqa: E731
    # warm-up on two rows (lazy library and autograd initialisation), then the memory of one
    # full forward+backward: ru_maxrss is the lifetime peak, so measure before any full call
    small = zs[:2].detach().clone().requires_grad_(True)
    fn(small, zt[:2], y[:2]).backward()
    before = max(current_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    t0 = time.perf_counter()
    call().backward()
    first = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    times = [] if a.repeats else [first]      # --repeats 0: time the measured call itself
    for _ in range(a.repeats):
        zs.grad = None
        t0 = time.perf_counter()
        call().backward()
        times.append(time.perf_counter() - t0)
    result = {"seconds": statistics.median(times), "peak_mb": max(peak, 0.0)}
    if a.impl != "pairwise":
        # exact peak of live tensor memory (bench/memory.py), in units of B*C floats of the dtype
        zs.grad = None
        result["tensor_bc"] = peak_floats(lambda: call().backward(), a.batch * a.classes, zs.element_size())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
