"""Worker processes for local sweeps, each training one group at a time (engine/sweep.py).

A `concurrent.futures.ProcessPoolExecutor` breaks as a whole when one worker dies (kill -9, the
out-of-memory killer): every running and queued group fails with BrokenProcessPool. Here each
worker has its own pipe, so a dead worker fails only the group it held; its slot (a GPU index,
or None on the CPU) gets a fresh worker for the next group.

- Workers ignore SIGINT: Ctrl-C reaches the whole process group, and the driver alone decides
  (it stops every worker, `stop`).
- On Linux a worker gets SIGTERM when its driver dies, even by SIGKILL, so no orphan trains on.
- Workers are reused across groups (importing torch costs seconds per process).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from multiprocessing.connection import wait as wait_any

STOP_GRACE_S = 5.0       # a stopped worker gets this long to exit on SIGTERM before SIGKILL


def _die_with_parent(parent: int) -> None:
    """Linux only (prctl PR_SET_PDEATHSIG): SIGTERM when the driver dies; elsewhere a no-op."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:            # the driver died before prctl took effect
        os._exit(1)


def _worker_main(conn, slot, threads: int, parent: int, target) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    if slot is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(slot)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["_LOGIT_KD_WORKER"] = "cpu" if slot is None else f"gpu{slot}"
    import threading

    import torch
    from tqdm import tqdm

    torch.set_num_threads(threads)
    # tqdm's default lock is a multiprocessing semaphore: a killed worker would leak it, and the
    # resource tracker warn about it at exit; one process needs no more than a thread lock
    tqdm.set_lock(threading.RLock())
    while True:
        try:
            task = conn.recv()
        except EOFError:                  # the driver is gone
            return
        if task is None:
            return
        conn.send(target(*task))


def signal_text(exitcode: int | None) -> str:
    """'killed by SIGKILL' / 'exited with status 3' for a dead process's exit code."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


class Worker:
    def __init__(self, ctx, slot, threads: int, target):
        self.slot, self.job, self.started = slot, None, 0.0
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, slot, threads, os.getpid(), target),
                                name=f"logit-kd-worker-{'cpu' if slot is None else slot}",
                                daemon=False)    # a daemon may not start DataLoader workers (ImageFolder data)
        self.proc.start()
        child.close()


class WorkerPool:
    """At most len(slots) workers; `submit(job, args)` gives a job to a free worker, `wait()`
    returns [(job, result or None, why)] of the jobs that ended (None: the worker died, why says
    how). `stop()` ends every worker (SIGTERM, then SIGKILL after STOP_GRACE_S)."""

    def __init__(self, slots: list, threads: int, target):
        self.ctx = mp.get_context("spawn")
        self.free_slots, self.threads, self.target = list(slots), threads, target
        self.idle: list[Worker] = []
        self.busy: list[Worker] = []

    def has_room(self) -> bool:
        return bool(self.idle or self.free_slots)

    def submit(self, job, args: tuple) -> bool:
        """Hand `args` to a free worker; False when the worker died before it took them."""
        w = self.idle.pop() if self.idle else Worker(self.ctx, self.free_slots.pop(0), self.threads, self.target)
        try:
            w.conn.send(args)
        except OSError:                   # died while idle: retire it, the caller retries the job
            self._retire(w)
            return False
        w.job, w.started = job, time.time()
        self.busy.append(w)
        return True

    def wait(self, timeout: float | None = None) -> list[tuple]:
        wait_any([w.conn for w in self.busy] + [w.proc.sentinel for w in self.busy], timeout)
        ended = []
        for w in list(self.busy):
            result = None
            if w.conn.poll():
                try:
                    result = w.conn.recv()
                except (EOFError, OSError):       # the pipe closed: the worker died
                    pass
            if result is None and w.proc.is_alive():
                continue                           # still training
            self.busy.remove(w)
            job, w.job = w.job, None
            if result is not None:
                self.idle.append(w)
                ended.append((job, result, None))
                continue
            w.proc.join(STOP_GRACE_S)
            ended.append((job, None, f"its worker (pid {w.proc.pid}) was {signal_text(w.proc.exitcode)}"))
            self._retire(w)
        return ended

    def _retire(self, w: Worker) -> None:
        if w.proc.is_alive():
            w.proc.kill()
        w.proc.join()
        w.conn.close()
        self.free_slots.append(w.slot)

    def stop(self, graceful: bool = True) -> None:
        """End every worker: idle ones are asked to exit; busy ones (or all, not graceful) get SIGTERM."""
        workers = self.idle + self.busy
        for w in workers:
            try:
                if graceful and w.job is None:
                    w.conn.send(None)
                else:
                    w.proc.terminate()
            except OSError:
                pass
        deadline = time.time() + STOP_GRACE_S
        for w in workers:
            w.proc.join(max(0.0, deadline - time.time()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()
            w.conn.close()
        self.idle, self.busy = [], []
