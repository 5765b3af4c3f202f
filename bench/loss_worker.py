"""One loss timing in a fresh process: time per forward+backward and peak extra memory.

    python -m bench.loss_worker dkl fast 256 1000 --repeats 3

Prints one JSON line: {"seconds": median s per forward+backward, "peak_mb": peak resident
memory above the level just before the first call (inputs already allocated), MiB}.
A fresh process per measurement keeps ru_maxrss (a lifetime peak) specific to one loss.
"""
import argparse
import json
import resource
import statistics
import time

import torch

from losses import build_loss
from losses.reference import dkl_pairwise_reference, ikl_pairwise_reference


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def main():
    p = argparse.ArgumentParser()
    p.add_argument("loss", choices=["dkl", "ikl"])
    p.add_argument("impl", choices=["fast", "pairwise"])
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
    if a.impl == "fast":
        fn = build_loss(a.loss, tau=4.0)
        call = lambda: fn(zs, zt, y)                                           # noqa: E731
    elif a.loss == "dkl":
        call = lambda: dkl_pairwise_reference(zs, zt, 4.0)                      # noqa: E731
    else:
        call = lambda: ikl_pairwise_reference(zs, zt, y, 4.0, T2=100.0)         # noqa: E731
    # warm-up on two rows (lazy library and autograd initialisation), then the memory of one
    # full forward+backward: ru_maxrss is the lifetime peak, so measure before any full call
    small = zs[:2].detach().clone().requires_grad_(True)
    if a.impl == "fast":
        fn(small, zt[:2], y[:2]).backward()
    elif a.loss == "dkl":
        dkl_pairwise_reference(small, zt[:2], 4.0).backward()
    else:
        ikl_pairwise_reference(small, zt[:2], y[:2], 4.0, T2=100.0).backward()
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
    print(json.dumps({"seconds": statistics.median(times), "peak_mb": max(peak, 0.0)}))


if __name__ == "__main__":
    main()
