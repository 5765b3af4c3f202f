"""Spread independent run groups over devices: `run_parallel(configs, jobs)`.

    from engine.sweep import run_parallel, save_configs
    results = run_parallel(configs, jobs=4)             # list of RunConfig (or lists = groups)
    python -m reproduce.sweep configs.json --jobs 4     # the same from a JSON file

- Grouping (`schedule`): configs are deduplicated by run id and grouped by shared data stream
  (`engine.train_group` trains a group with one teacher pass per batch), in stages by teacher
  depth: teachers, their students, students of students. A list of lists is taken as the
  groups as given.
- Workers: on a CUDA machine one worker process per GPU (CUDA_VISIBLE_DEVICES=<i>, so each
  sees one "cuda" device); on the CPU `jobs` worker processes with `threads` torch threads
  each (default 1: two OpenMP threads on a loaded small CPU are 50-100x slower on small ops).
- Order: a group starts as soon as every teacher it needs that is part of the sweep has
  finished; among the ready ones, `priority(group)` decides (default: most runs first).
- Finished runs are skipped (a group whose runs are all finished is reported "done"); an
  unfinished one resumes from its checkpoint (train_group's behaviour).
- Validation: every group is checked first, in this process (engine.validate: configs, data,
  models, teachers); a bad group is "failed" at once, without a worker.
- Failures: an exception in one group is reported for its runs (status "failed" with the
  error in one line; a traceback only for errors that are not user errors) and the sweep goes
  on. A diverging run stops alone (failed.json), its group's other runs finish, and the group
  is "failed". A group is "blocked" when a teacher it needs did not finish (its group failed
  or was blocked); students of a failed group's healthy runs still train. A worker that dies
  (any signal, the out-of-memory killer) fails its own group alone ("its worker (pid N) was
  killed by SIGKILL ..."), with failed.json in the group's unfinished runs; a fresh worker
  takes its slot and every other group runs to the end (engine/workers.py).
- Interruption (Ctrl-C, or SIGTERM / SIGHUP through reproduce.cli.main_guard): every worker is
  stopped before the exception propagates; run directories stay resumable.
- Locks: train_group holds each run's lock while training it; a run another sweep is training
  is waited for and, once finished there, skipped here (a teacher is never trained twice).

Each result is {"runs": [run ids], "status": done | ok | failed | blocked, "seconds", "error",
"worker"}. Run directories are those of `engine.train`; nothing else is written (but failed.json).
"""
from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path

from common import UserError
from common.files import atomic_write_text
from engine.config import RunConfig
from engine.rundir import RunDir
from engine.trainer import GROUP_KEYS, TrainingDiverged, check_group

def group_key(c: RunConfig) -> tuple:
    """Runs with equal keys can train as one group (engine.trainer.check_group's conditions)."""
    def part(value):
        return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)

    return (*(part(getattr(c, k)) for k in GROUP_KEYS), c.recipe["batch_size"], c.recipe["epochs"])


def schedule(configs: list[RunConfig]) -> list[list[list[RunConfig]]]:
    """Stages (by teacher depth) of groups (shared data stream); duplicates by run id dropped."""
    unique: dict[str, RunConfig] = {}
    for c in configs:
        unique.setdefault(c.run_id, c)
    depth: dict[str, int] = {}

    def d(rid):
        if rid not in depth:
            c = unique.get(rid)
            depth[rid] = 0 if c is None or not c.teachers else 1 + max(d(t) for t in c.teachers)
        return depth[rid]

    stages: dict[int, dict[tuple, list[RunConfig]]] = {}
    for rid, c in unique.items():
        stages.setdefault(d(rid), {}).setdefault(group_key(c), []).append(c)
    return [list(stages[k].values()) for k in sorted(stages)]


def makespan(groups: list[list[RunConfig]], jobs: int, cost=None) -> float:
    """Simulated wall time of `run_parallel`'s schedule: a group starts when the groups that hold
    its teachers have finished; among the ready groups those that teach go first, then the
    costliest; `jobs` workers. cost(group) -> seconds (default: its number of runs)."""
    import heapq

    cost = cost or len
    where = {c.run_id: i for i, g in enumerate(groups) for c in g}
    needs = [{where[t] for c in g for t in c.teachers if t in where and where[t] != i} for i, g in enumerate(groups)]
    teaching = {where[t] for g in groups for c in g for t in c.teachers if t in where}
    pending = sorted(range(len(groups)), key=lambda i: (i not in teaching, -cost(groups[i])))
    done, running, now, free = set(), [], 0.0, jobs
    while pending or running:
        for i in [i for i in pending if needs[i] <= done][:free]:
            pending.remove(i)
            free -= 1
            heapq.heappush(running, (now + cost(groups[i]), i))
        if not running:
            raise UserError("split_groups: groups wait for teachers that never run")
        now, i = heapq.heappop(running)
        done.add(i)
        free += 1
    return now


def _split(group: list, k: int, cost) -> list[list]:
    """`group` in (at most) k parts: the runs of one architecture stay together while there are
    parts enough (they can train stacked); the costliest part is halved (alternate runs) until
    there are k; then the parts are packed into k bins, costliest first into the cheapest bin.
    Each part keeps the group's order."""
    parts: dict[tuple, list] = {}
    for c in group:
        parts.setdefault((c.model, json.dumps(c.model_options, sort_keys=True, default=str)), []).append(c)
    parts = list(parts.values())
    while len(parts) < k:
        big = max((p for p in parts if len(p) > 1), key=cost, default=None)
        if big is None:
            break
        parts.remove(big)
        parts += [big[0::2], big[1::2]]
    bins: list[list] = [[] for _ in range(k)]
    for part in sorted(parts, key=cost, reverse=True):
        min(bins, key=lambda b: cost(b) if b else 0.0).extend(part)
    order = {c.run_id: i for i, c in enumerate(group)}
    return [sorted(b, key=lambda c: order[c.run_id]) for b in bins if b]


def split_groups(groups: list[list[RunConfig]], jobs: int, cost=None) -> list[list[RunConfig]]:
    """The groups, split where that shortens the simulated schedule on `jobs` workers
    (`makespan`: teachers before their students, as `run_parallel` runs them). Greedy: the
    costliest group that a split into 2..jobs parts makes the schedule shorter (by more than
    0.1 %) is split, until none does. Each part pays the teacher forward again, which `cost`
    should count (cost(group) -> seconds; default: its number of runs, teachers free). Parts
    keep same-architecture runs together while they can (engine/stacked.py stacks them) and the
    group's order; every part is a valid group (check_group); unsplit groups come back as given."""
    if jobs < 1:
        raise UserError(f"jobs must be >= 1, got {jobs}")
    cost = cost or len
    out = [list(g) for g in groups]
    if jobs == 1:
        return out
    best = makespan(out, jobs, cost)
    while True:
        for g in sorted((g for g in out if len(g) > 1), key=cost, reverse=True):
            i = next(n for n, x in enumerate(out) if x is g)
            trials = [out[:i] + _split(g, k, cost) + out[i + 1:] for k in range(2, min(jobs, len(g)) + 1)]
            scored = [(makespan(t, jobs, cost), n, t) for n, t in enumerate(trials)]
            span, _, trial = min(scored, key=lambda x: (x[0], x[1]))
            if span < best * (1 - 1e-3):
                out, best = trial, span
                break
        else:
            return out


def save_configs(configs: list[RunConfig], path) -> Path:
    """Write configs as a JSON list (the input of `python -m reproduce.sweep`)."""
    from engine.config import _jsonable

    path = Path(path)
    atomic_write_text(path, json.dumps([_jsonable(c.to_dict()) for c in configs], indent=1) + "\n")
    return path


FIELDS = {"experiment": str, "dataset": str, "model": str, "loss": str, "loss_hparams": dict, "teachers": list,
          "ensemble": str, "recipe": dict, "seed": int, "dataset_options": dict, "model_options": dict,
          "label_noise": dict, "teacher_cache": bool, "method": str, "imported": dict, "plugin": str}
REQUIRED = ("experiment", "dataset", "model", "recipe")
LOAD_FIX = "write a JSON list of run configs (engine.sweep.save_configs writes one)"


def load_configs(path) -> list[RunConfig]:
    """The configs of a sweep file: a JSON list of `RunConfig.to_dict()` objects. A missing file,
    bad JSON, another shape, an unknown or missing key, a field of the wrong type or a bad recipe
    is a UserError naming the file, the entry and the fix, before anything runs."""
    from engine.config import from_jsonable

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no sweep config file {path} ({'a folder' if path.is_dir() else 'not found'}); {LOAD_FIX}")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is not JSON ({type(e).__name__}: {e}); {LOAD_FIX}") from None
    if not isinstance(data, list) or not data:
        what = "an empty list" if data == [] else f"a JSON {_JSON_NAME.get(type(data), type(data).__name__)}"
        raise UserError(f"{path} holds {what}, not a list of run configs; {LOAD_FIX}")
    return [_config(from_jsonable(d), f"{path}, entry {i}") for i, d in enumerate(data)]


def _config(d, where: str) -> RunConfig:
    from engine.validate import _recipe

    if not isinstance(d, dict):
        raise UserError(f"{where}: a run config is a JSON object, got {d!r}; {LOAD_FIX}")
    unknown = sorted(set(d) - set(FIELDS))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; a run config has {', '.join(FIELDS)}")
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise UserError(f"{where}: missing key(s) {', '.join(missing)}")
    for key, kind in FIELDS.items():
        value = d.get(key)
        if key in d and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise UserError(f"{where}: {key} must be a JSON {_JSON_NAME[kind]}, got {value!r}")
    if not all(isinstance(t, str) for t in d.get("teachers", [])):
        raise UserError(f"{where}: teachers must be a list of run ids (strings), got {d['teachers']!r}")
    try:
        _recipe(d["recipe"])
        return RunConfig.from_dict(d)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    except TypeError as e:                 # label_noise with an unknown key
        raise UserError(f"{where}: {' '.join(str(e).split())}") from None


_JSON_NAME = {str: "string", dict: "object", list: "list", int: "integer", float: "number", bool: "true or false"}


# ------------------------------------------------------------------------------ workers
def _train_in_worker(configs: list[RunConfig], kwargs: dict) -> dict:
    from engine.trainer import train_group

    t0 = time.time()
    worker = os.environ.get("_LOGIT_KD_WORKER", "")
    try:
        train_group(configs, **kwargs)
        return {"status": "ok", "seconds": time.time() - t0, "error": None, "worker": worker}
    except (UserError, TrainingDiverged) as e:     # the user's to fix: one line says it all
        return {"status": "failed", "seconds": time.time() - t0, "error": one_line(e), "worker": worker}
    except BaseException as e:    # noqa: BLE001  report, never lose the other groups
        return {"status": "failed", "seconds": time.time() - t0, "error": f"{type(e).__name__}: {one_line(e)}",
                "traceback": traceback.format_exc(), "worker": worker}


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _precheck(groups: list, todo: list[int], data_root=None, download=False) -> dict[int, str]:
    """Validate the groups `todo` here, before any worker starts: group index -> its one-line error."""
    from engine.validate import Checker

    checker = Checker(data_root, download)
    planned = {c.run_id: c for g in groups for c in g}
    errors = {}
    for i in todo:
        try:
            check_group(groups[i])
            for c in groups[i]:
                if not RunDir(c).finished:
                    checker.check(c, planned)
        except UserError as e:
            errors[i] = one_line(e)
    return errors


def triage(groups: list, record) -> list[int]:
    """The groups still to train; the others are recorded at once: 'failed' when a finished run
    is damaged, 'done' when every run is finished. Both launchers start here."""
    pending = []
    for i, g in enumerate(groups):
        damaged = _damaged(g)
        if damaged:
            record(i, "failed", damaged)
        elif all(RunDir(c).finished for c in g):
            record(i, "done")
        else:
            pending.append(i)
    return pending


def default_devices(device: str = "auto") -> list:
    """One slot per visible GPU (CUDA machines, device auto/cuda), else [None] (CPU)."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        return list(range(torch.cuda.device_count()))
    return [None]


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_jobs(jobs: int | None, launcher: str = "local") -> None:
    """jobs >= 1; on this machine at most 4 workers per CPU core (at least 8): each worker is a
    process with its own data and model copies, and more only slow every run down (a typo such
    as --jobs 200 would start 200 processes). The Slurm launcher's --jobs caps queued jobs: any."""
    if jobs is None:
        return
    if not isinstance(jobs, int) or jobs < 1:
        raise UserError(f"--jobs must be >= 1 (a whole number), got {jobs!r}")
    limit = max(8, 4 * cpu_cores())
    if launcher == "local" and jobs > limit:
        raise UserError(f"--jobs {jobs} is more than {limit} worker processes (4 per CPU core, {cpu_cores()} "
                        f"core(s) here); use --jobs {cpu_cores()} (one per core) or fewer")


def run_parallel(configs, jobs: int | None = None, *, device: str = "auto", threads: int = 1,
                 log=print, priority=None, **train_kwargs) -> list[dict]:
    """Train `configs` (a list of RunConfig, grouped by `schedule`, or a list of groups) over
    worker processes; returns one result per group (see the module docstring). `priority(group)`
    orders the groups that are ready to start (smallest first; default: the largest group first)."""
    check_jobs(jobs)
    if configs and isinstance(configs[0], RunConfig):
        groups = [g for stage in schedule(configs) for g in stage]
    else:
        groups = [list(g) for g in configs]
    gpus = default_devices(device)
    if gpus[0] is None:
        slots = [None] * max(1, jobs or (os.cpu_count() or 1))
        worker_device = "cpu" if device in ("auto", "cpu") else device
    else:
        slots = gpus[: jobs] if jobs else gpus       # one worker per GPU
        worker_device = "cuda"
    from engine.trainer import resolve_device

    resolve_device(worker_device)                # a bad device: one line, before anything starts
    kwargs = dict(train_kwargs, device=worker_device)
    kwargs.setdefault("quiet", True)

    results: list[dict | None] = [None] * len(groups)

    def record(i, status, error=None, seconds=0.0, worker="", **extra):
        results[i] = {"runs": [c.run_id for c in groups[i]], "status": status, "seconds": seconds,
                      "error": error, "worker": worker, **extra}

    pending = triage(groups, record)
    for i, error in _precheck(groups, pending, kwargs.get("data_root"), kwargs.get("download", False)).items():
        record(i, "failed", error)
        log(f"  failed {_describe(groups[i])}: {error}")
    pending = [i for i in pending if results[i] is None]
    ours = {c.run_id: i for i in range(len(groups)) for c in groups[i]}
    by_id = {c.run_id: c for g in groups for c in g}
    over: set[int] = {i for i in range(len(groups)) if results[i] is not None}   # done, failed or blocked

    def state(i):
        """ready, wait (a teacher's group still runs) or the run id of a teacher that did not finish."""
        for t in {t for c in groups[i] for t in c.teachers if t in ours and ours[t] != i}:
            if ours[t] not in over:
                return "wait"
            if not RunDir(by_id[t]).finished:
                return t
        return "ready"

    pending.sort(key=(lambda i: priority(groups[i])) if priority else (lambda i: -len(groups[i])))
    if pending:
        log(f"sweep: {sum(len(groups[i]) for i in pending)} run(s) in {len(pending)} group(s) on "
            f"{len(slots)} worker(s) ({'GPU ' + ','.join(map(str, slots)) if slots[0] is not None else 'CPU'})")
    from engine.workers import WorkerPool

    pool = WorkerPool(slots, threads, _train_in_worker)
    try:
        while pending or pool.busy:
            for i in list(pending):
                st = state(i)
                if st not in ("ready", "wait"):
                    pending.remove(i)
                    over.add(i)
                    record(i, "blocked", f"its teacher {st} did not finish")
                    log(f"  blocked {_describe(groups[i])}: its teacher {st} did not finish")
                elif st == "ready" and pool.has_room() and pool.submit(i, (groups[i], kwargs)):
                    pending.remove(i)
            if not pool.busy:
                if any(state(i) == "ready" for i in pending):
                    continue                  # a worker died while idle: its slot takes a fresh one
                if pending:
                    raise RuntimeError("sweep deadlock: groups wait for teachers that never run")
                break
            for i, res, died in pool.wait():
                if res is None:               # killed (signal, out of memory): this group alone fails
                    res = {"status": "failed", "seconds": 0.0, "worker": "",
                           "error": f"{died} while training this group; its runs resume from their last "
                                    f"checkpoints when the command is rerun"}
                    mark_failed(groups[i], res["error"])
                record(i, **res)
                over.add(i)
                what = f"in {res['seconds']:.0f} s" if res["status"] == "ok" else f"FAILED: {res['error']}"
                log(f"  {res['status']} {_describe(groups[i])} {what}")
    except BaseException:
        pool.stop(graceful=False)             # Ctrl-C, SIGTERM, SIGHUP: no worker outlives the sweep
        raise
    pool.stop()
    return results


def mark_failed(group, error: str) -> None:
    """failed.json (reason, time) in each unfinished run of a group whose worker died: `--status`
    and `python -m reproduce.store list` show it failed; a rerun clears it and resumes."""
    from engine.launch import _write_failed

    for c in group:
        _write_failed(c, {"run_id": c.run_id, "reason": error, "error": error,
                          "time": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _damaged(group) -> str | None:
    """The one-line error of a finished run of `group` whose files are damaged, else None."""
    for c in group:
        rd = RunDir(c)
        if rd.finished:
            try:
                rd.verify()
            except UserError as e:
                return one_line(e)
    return None


def _describe(group) -> str:
    return f"[{len(group)} run(s): {', '.join(c.slug for c in group[:3])}{', ...' if len(group) > 3 else ''}]"
