"""Where the time of one student group goes: `python -m bench.profile_group mini7` (or `mini100`).

Trains a few epochs of a real group of the mini profiles (in a temporary results folder, with
a teacher trained for one epoch: its accuracy does not matter for timing) and times each phase
of the training loop by wrapping the trainer's calls:

    data        drawing the batches (permutation, shift + noise augmentation)
    teacher     the teacher forward on each batch (once per batch for the whole group)
    forward     the students' forwards (one vmapped forward when stacked)
    loss        the objectives (distillation loss + CE)
    backward    loss.backward()
    optimizer   zero_grad + step (+ the stacked state export at epoch ends)
    eval        the test-set evaluation (every `eval_every`-th epoch, the first, the last 10)
    io          the epoch's end without evaluation: metrics rows and checkpoints (fsync'ed, on
                I/O threads, waited for), log lines
    other       the rest of the loop: learning rates, counters, Python

and extrapolates to the recipe's full length: per-epoch phases x epochs, the evaluation cost
per evaluated epoch x the number of evaluated epochs (`engine.recipes.evaluates`). Wall and CPU
seconds (one torch thread; `time.process_time`, which leaves out waiting for the disk and, on a
shared machine, for the other jobs) are printed with the load average.

    python -m bench.profile_group mini7 --epochs 20            # paper 1's 7-student group
    python -m bench.profile_group mini100 --epochs 3 --stack   # 8 BN students, stacked
    python -m bench.profile_group mini7 --before               # torch's pooling, writes in line
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from common.files import atomic_write_text

PHASES = ("data", "teacher", "forward", "loss", "backward", "optimizer", "eval", "io", "other")
INF = float("inf")


def mini7_group(teacher_id: str):
    """Paper 1's tau sweep at mini scale: KL tau 0.5/1/3/5/20/inf + LMSE on cnn1d_student."""
    from engine import make_config

    common = dict(teachers=[teacher_id], recipe="mini_student", dataset_options={"num_train": 1000})
    group = [make_config("profile", "mnist1d", "cnn1d_student", loss="kl", loss_hparams={"tau": t}, **common)
             for t in (0.5, 1.0, 3.0, 5.0, 20.0, INF)]
    return group + [make_config("profile", "mnist1d", "cnn1d_student", loss="mse", **common)]


def mini100_group(teacher_id: str):
    """Paper 2's deep -> shallow pair at mini100 scale: 8 BatchNorm students cnn1d_s100_shallow."""
    from engine import make_config

    losses = [("kl", {"tau": 4.0, "alpha": 0.9}), ("kl", {"tau": 4.0}), ("dkl", {}), ("dkd", {}),
              ("ikl", {"alpha": 4.0}), ("ikl", {"alpha": 4.0, "class_prior": True}), ("mse", {}), ("ce", {})]
    return [make_config("profile", "mnist1d_hier", "cnn1d_s100_shallow", loss=name, loss_hparams=hp,
                        teachers=[teacher_id], recipe="mini100_student") for name, hp in losses]


SETTINGS = {
    "mini7": ("mnist1d", "cnn1d_teacher", "mini_teacher", {"num_train": 1000}, mini7_group),
    "mini100": ("mnist1d_hier", "cnn1d_m100", "mini100_teacher", {}, mini100_group),
}


class Clock:
    def __init__(self):
        self.wall = dict.fromkeys(PHASES, 0.0)
        self.cpu = dict.fromkeys(PHASES, 0.0)
        self.stack = []
        self.tail_start = None

    def end_epoch(self):
        w0, c0, ew, ec = self.tail_start
        self.wall["io"] += time.perf_counter() - w0 - (self.wall["eval"] - ew)
        self.cpu["io"] += time.process_time() - c0 - (self.cpu["eval"] - ec)
        self.tail_start = None

    @contextmanager
    def phase(self, name):
        """Nested phases count once, in the outermost one."""
        if self.stack:
            yield
            return
        self.stack.append(name)
        w, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] += time.perf_counter() - w
            self.cpu[name] += time.process_time() - c
            self.stack.pop()

    def wrap(self, name, fn):
        def timed(*a, **k):
            with self.phase(name):
                return fn(*a, **k)
        return timed


def instrument(trainer, members, clock: Clock):
    """Wrap the trainer's calls in place (this trainer only)."""
    trainer.teacher_logits = clock.wrap("teacher", trainer.teacher_logits)
    trainer._objective = clock.wrap("loss", trainer._objective)
    trainer._evaluate = clock.wrap("eval", trainer._evaluate)
    for m in members:
        m.forward = clock.wrap("forward", m.forward)
        m.optimizer.step = clock.wrap("optimizer", m.optimizer.step)
        m.optimizer.zero_grad = clock.wrap("optimizer", m.optimizer.zero_grad)
    # the epoch's tail (after the batches: rows, checkpoints on the I/O threads, logs) minus its
    # evaluations is "io"; the tail starts at the first reduction after the loop
    reduce = trainer.dist.all_reduce_sum

    def mark_tail(t):
        if clock.tail_start is None:
            clock.tail_start = (time.perf_counter(), time.process_time(), clock.wall["eval"], clock.cpu["eval"])
        return reduce(t)

    object.__setattr__(trainer.dist, "all_reduce_sum", mark_tail)     # a frozen dataclass
    for st in trainer.stacked.groups if trainer.stacked is not None else ():
        st.forward = clock.wrap("forward", st.forward)
        st.optimizer.step = clock.wrap("optimizer", st.optimizer.step)
        st.optimizer.zero_grad = clock.wrap("optimizer", st.optimizer.zero_grad)
        st.export_state = clock.wrap("optimizer", st.export_state)
    split = trainer.bundle.train
    batches = split.batches

    def timed_batches(*a, **k):
        it = batches(*a, **k)
        while True:
            with clock.phase("data"):
                try:
                    b = next(it)
                except StopIteration:
                    return
            yield b

    split.batches = timed_batches
    backward = torch.Tensor.backward

    def timed_backward(self, *a, **k):
        with clock.phase("backward"):
            return backward(self, *a, **k)

    return backward, timed_backward


def profile(setting: str, epochs: int, stack, quiet=True, before=False) -> dict:
    from engine import make_config, train
    from engine.recipes import evaluates
    from engine.trainer import Trainer

    dataset, teacher_model, teacher_recipe, options, group = SETTINGS[setting]
    teacher = train(make_config("teachers", dataset, teacher_model, recipe=teacher_recipe,
                                recipe_overrides={"epochs": 1}, dataset_options=options), quiet=True)
    configs = group(teacher.config.run_id)
    if before:
        os.environ["LOGIT_KD_FASTOPS"] = "0"
    trainer = Trainer(configs, quiet=quiet, force=True, stack=stack)
    trainer.io_threads = not before
    members = [trainer._make_member(c) for c in configs]
    trainer.stacked = trainer._maybe_stack(members)
    clock = Clock()
    backward, timed_backward = instrument(trainer, members, clock)
    recipe = configs[0].recipe_obj()
    torch.Tensor.backward = timed_backward
    epoch_wall = []
    try:
        for e in range(epochs):
            w = time.perf_counter()
            trainer._train_epoch(members, e)
            epoch_wall.append(time.perf_counter() - w)
            clock.end_epoch()
    finally:
        torch.Tensor.backward = backward
    total_w, total_c = sum(epoch_wall), None
    n_eval = sum(evaluates(recipe, e + 1) for e in range(epochs))
    n_eval_full = sum(evaluates(recipe, e + 1) for e in range(recipe.epochs))
    scale = recipe.epochs / epochs
    out = {"setting": setting, "students": len(configs), "models": sorted({c.model for c in configs}),
           "stacked": trainer.stacked is not None, "fastops": trainer.fast_ops, "io_threads": trainer.io_threads,
           "epochs_measured": epochs, "epochs": recipe.epochs, "evals": n_eval_full,
           "load": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M"), "phases": {}}
    known_w = sum(clock.wall.values())
    clock.wall["other"] = total_w - known_w
    for p in PHASES:
        w, c = clock.wall[p], clock.cpu[p]
        if p == "eval":
            f = n_eval_full / max(n_eval, 1)
        else:
            f = scale
        out["phases"][p] = {"wall_s": w * f, "cpu_s": c * f if p != "other" else None}
    out["total_wall_s"] = sum(v["wall_s"] for v in out["phases"].values())
    del total_c
    return out


def report(r: dict) -> str:
    lines = [f"{r['setting']}: {r['students']} students ({', '.join(r['models'])}), "
             f"{'stacked' if r['stacked'] else 'plain loop'}, fastops {'on' if r['fastops'] else 'off'}, "
             f"I/O threads {'on' if r['io_threads'] else 'off'}; "
             f"{r['epochs_measured']} epochs measured, extrapolated to {r['epochs']} epochs and {r['evals']} "
             f"evaluations; load {r['load'][0]:.2f} {r['load'][1]:.2f} {r['load'][2]:.2f}; {r['date']}",
             "", "| phase | wall s | share | CPU s |", "|---|---|---|---|"]
    tot = r["total_wall_s"]
    for p, v in r["phases"].items():
        cpu = "-" if v["cpu_s"] is None else f"{v['cpu_s']:.1f}"
        lines.append(f"| {p} | {v['wall_s']:.1f} | {100 * v['wall_s'] / tot:.0f} % | {cpu} |")
    lines.append(f"| total | {tot:.1f} | | |")
    lines.append(f"\nper student: {tot / r['students']:.1f} s")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.profile_group", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("setting", choices=sorted(SETTINGS))
    p.add_argument("--epochs", type=int, default=None, help="epochs measured (default 20 for mini7, 3 for mini100)")
    p.add_argument("--stack", action="store_true", help="stacked students (engine/stacked.py)")
    p.add_argument("--before", action="store_true",
                   help="as before this work's fast paths: torch's pooling, run-directory writes in line")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)
    epochs = args.epochs or (20 if args.setting == "mini7" else 3)
    run_in_scratch_store(lambda: profile(args.setting, epochs, True if args.stack else False, before=args.before),
                         report, threads=args.threads, json_path=args.json)


def run_in_scratch_store(measure, report, *, threads: int, json_path: str | None) -> dict:
    """Run `measure()` with `threads` torch threads against a throw-away run store, print
    `report(result)` and write the result as JSON to `json_path` if given (bench.groups too)."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LOGIT_KD_RESULTS"] = str(Path(tmp) / "results")
        r = measure()
    print(report(r))
    if json_path:
        atomic_write_text(json_path, json.dumps(r, indent=1) + "\n")
    return r


if __name__ == "__main__":
    main()
