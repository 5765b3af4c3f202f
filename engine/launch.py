"""Launch a sweep here (`local`: engine.sweep.run_parallel) or on a Slurm cluster (`slurm`, submitit).

    from engine.launch import launch, status
    results = launch(configs, "local", jobs=4)                       # worker processes on this machine
    results = launch(configs, "slurm", partition="gpu", gpus_per_job=1, time_min=240)
    rows = status(configs)                                           # queued / running / done / failed

    python -m reproduce.sweep configs.json --launcher slurm --partition gpu --gpus-per-job 1 --time 240
    python -m reproduce.sweep configs.json --status

`slurm` submits one job per group of runs (`engine.sweep.schedule`: runs that share a data stream
train as one `engine.trainer.train_group`, one teacher pass per batch) through submitit:

- Order: a group is submitted once every group that trains one of its teachers has finished
  (the driver waits; groups that become ready together go in as one job array). The same
  driver runs with submitit's LocalExecutor (`executor="local"`: the same jobs as local
  processes, real pickling; what the tests use) and with Slurm (`executor="slurm"`, sbatch).
- Pre-emption and time limits: the job function is checkpointable; on Slurm's warning signal
  (USR2, `signal_delay_s` before the end, or a pre-emption) submitit requeues it and the group
  resumes from its runs' last end-of-epoch checkpoints (train_group resumes by itself).
- Failures: a job that fails (an exception, or a job that ended without a result: killed, out
  of memory, node failure) is resubmitted up to `max_retries` times, resuming from the
  checkpoints; a user error (bad config) or a diverged loss would fail the same way again and
  is not retried. A group that still fails is reported "failed", each of its unfinished runs
  gets a `failed.json` (error, traceback, job), and the groups that need its teachers are
  "blocked"; the others go on.
- Restarting the driver with the same runs (same folder) re-attaches to its Slurm jobs that are
  still queued or running (`jobs.json` in the folder) instead of submitting them twice.
- Logs: `<results root>/slurm/<sweep>/` (submitit's pickles, `<job id>_<task>_log.out/err`).

Each result is the one of `engine.sweep.run_parallel` ({"runs", "status": ok | done | failed |
blocked, "seconds", "error", "worker"}) plus, for slurm, "attempts" and "job_ids".

`status(configs)` reads the run store alone (no scheduler query): per group "done" (every run
finished), "running" (a run holds its lock, or has a checkpoint and no failure), "failed" (a
run has failed.json) or "queued" (nothing started yet).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import time
import traceback
from pathlib import Path

from common import UserError
from common.files import atomic_write_text
from engine.config import RunConfig
from engine.rundir import RESULTS_ROOT_ENV, RunDir, results_root, write_json
from losses.plugins import PLUGINS_ENV

LAUNCHERS = ("local", "slurm")
EXECUTORS = ("slurm", "local")     # submitit executors for the slurm launcher

# slurm-launcher options and their defaults (launch() keywords; the CLI flags of add_launcher_args)
SLURM_DEFAULTS = {
    "executor": "slurm",       # "slurm" (sbatch) or "local" (submitit.LocalExecutor: tests, rehearsal)
    "partition": None,         # sbatch --partition
    "gpus_per_job": 1,         # GPUs of each job (> 1: the group trains data-parallel, one task per GPU)
    "cpus_per_task": None,     # sbatch --cpus-per-task (also the job's torch threads)
    "time_min": 240,           # time limit of one job, minutes (a longer group is requeued from its checkpoint)
    "mem_gb": None,            # sbatch --mem
    "account": None,           # sbatch --account
    "qos": None,               # sbatch --qos
    "constraint": None,        # sbatch --constraint
    "setup": (),               # shell lines run before the job (module load ..., source venv/bin/activate)
    "slurm_options": None,     # any other sbatch option, {"exclude": "node12"}
    "max_retries": 2,          # resubmissions of a failed job (pre-emption requeues do not count)
    "max_requeues": 30,        # checkpointed requeues of one job at its time limit (submitit's max_num_timeout)
    "folder": None,            # submitit folder (default <results root>/slurm/<sweep>/)
    "tasks_per_job": None,     # processes per job (default max(1, gpus_per_job)); > 1 = DDP
    "signal_delay_s": 120,     # USR2 this long before the time limit: checkpointed requeue
    "precheck": True,          # validate every group in the driver first (engine.validate); False when
                               # the data exist only on the compute nodes (staged by `setup` lines)
}


# ------------------------------------------------------------------------------ the job
class DeterministicFailure(RuntimeError):
    """A failure that would repeat on a retry (user error, diverged loss): not resubmitted."""


class GroupJob:
    """What one Slurm job runs: `engine.trainer.train_group` on one group (picklable).

    Checkpointable in submitit's sense (`checkpoint` returns the same call): on a time-limit or
    pre-emption signal submitit requeues it, and the rerun resumes from the runs' checkpoints."""

    def __init__(self, configs: list[RunConfig], train_kwargs: dict, root: str, threads: int = 1):
        self.configs = list(configs)
        self.train_kwargs = dict(train_kwargs)
        self.root = root
        self.threads = threads
        self.plugins = os.environ.get(PLUGINS_ENV, "")   # researchers' loss files (losses/plugins.py), as the store

    def __call__(self) -> dict:
        os.environ[RESULTS_ROOT_ENV] = self.root      # the driver's run store, whatever the node's cwd
        if self.plugins:
            os.environ[PLUGINS_ENV] = self.plugins    # whatever sbatch's --export passes on
        os.environ["OMP_NUM_THREADS"] = str(self.threads)
        import torch

        torch.set_num_threads(self.threads)
        rank0 = _export_distributed()
        t0 = time.time()
        if rank0:
            for c in self.configs:                    # a retry: no longer failed, about to run
                RunDir(c).failed_file.unlink(missing_ok=True)
        try:
            self.train(self.configs, **self.train_kwargs)
        except Exception as e:                        # noqa: BLE001  recorded, then re-raised for submitit
            if rank0:
                _mark_failed(self.configs, e)
            from engine.trainer import TrainingDiverged

            if isinstance(e, (UserError, TrainingDiverged)):
                raise DeterministicFailure(f"{type(e).__name__}: {' '.join(str(e).split())}") from e
            raise
        return {"status": "ok", "seconds": time.time() - t0, "error": None, "worker": _worker_name()}

    @staticmethod
    def train(configs, **kwargs):
        from engine.trainer import train_group

        return train_group(configs, **kwargs)

    def checkpoint(self, *args, **kwargs):
        """submitit: requeue this call after a time-limit or pre-emption signal (resumes from checkpoints)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def _export_distributed() -> bool:
    """A job with several tasks trains data-parallel: export torchrun's variables from Slurm's
    (engine/distributed.py reads them). Returns whether this is rank 0."""
    try:
        from submitit import JobEnvironment

        env = JobEnvironment()
        tasks = env.num_tasks
    except RuntimeError:                              # not inside a submitit job (direct call)
        return True
    if tasks > 1 and "WORLD_SIZE" not in os.environ:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        if env.num_nodes == 1:
            os.environ["MASTER_ADDR"] = "127.0.0.1"
    return env.global_rank == 0


def _cuda_here() -> bool:
    import torch

    return torch.cuda.is_available()


def _worker_name() -> str:
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID"):
        job = f"slurm:{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '')}"
    elif env.get("SLURM_JOB_ID"):
        job = f"slurm:{env['SLURM_JOB_ID']}"
    else:
        job = f"local:{env.get('SUBMITIT_LOCAL_JOB_ID') or os.getpid()}"
    return f"{job}@{socket.gethostname()}"


def _mark_failed(configs, error: BaseException) -> None:
    """failed.json in each unfinished run dir of the group (kept if the trainer already wrote one)."""
    message = f"{type(error).__name__}: {error}"
    record = {"reason": message, "error": message, "traceback": traceback.format_exc(),
              "worker": _worker_name(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for c in configs:
        _write_failed(c, {**record, "run_id": c.run_id})


def _write_failed(config: RunConfig, record: dict) -> None:
    """failed.json in an unfinished run's directory (kept if one exists: the trainer's, for a
    diverged run); a directory the job never created gets its config.json too, so that it is an
    ordinary run directory that a later attempt resumes (RunDir.create accepts it)."""
    rd = RunDir(config)
    if rd.finished or rd.failed_file.exists():
        return
    try:
        if not rd.config_file.exists():
            write_json(rd.config_file, config.to_dict())
        write_json(rd.failed_file, record)
    except OSError:
        pass


# ------------------------------------------------------------------------------ status
STATES = ("queued", "running", "done", "failed")


def lock_held(path: Path) -> bool:
    """Whether a process holds a lock file of a run directory (`*.lock`: engine.rundir's `.lock`,
    a flock the kernel frees when its holder dies), tested by taking and releasing it at once."""
    try:
        locks = list(Path(path).glob("*.lock"))
    except OSError:
        return False
    if not locks:
        return False
    from filelock import FileLock, Timeout

    for lock in locks:
        try:
            with FileLock(lock, timeout=0):
                pass
        except Timeout:
            return True
        except OSError:
            continue
    return False


def run_state(config: RunConfig) -> str:
    """queued / running / done / failed of one run, from its directory alone."""
    rd = RunDir(config)
    s = rd.status()
    if s == "done":
        return "done"
    if s == "running" or lock_held(rd.path):
        return "running"
    if s == "failed":
        return "failed"
    if s == "started":          # a checkpoint and no failure: training, or pre-empted and requeued
        return "running"
    return "queued"             # created / absent


def group_state(states: list[str]) -> str:
    if all(s == "done" for s in states):
        return "done"
    for s in ("running", "failed"):
        if s in states:
            return s
    return "queued"


def _groups(configs_or_groups) -> list[list[RunConfig]]:
    from engine.sweep import schedule

    items = list(configs_or_groups)
    if items and isinstance(items[0], RunConfig):
        return [g for stage in schedule(items) for g in stage]
    return [list(g) for g in items]


def status(configs_or_groups) -> list[dict]:
    """One row per group: {"runs", "status": queued | running | done | failed, "run_status"
    {run id: state}, "stage"}; from the run store alone."""
    groups = _groups(configs_or_groups)
    ids = {c.run_id for g in groups for c in g}
    depth: dict[str, int] = {}
    by_id = {c.run_id: c for g in groups for c in g}

    def d(rid):
        if rid not in depth:
            c = by_id.get(rid)
            depth[rid] = 0 if c is None else 1 + max((d(t) for t in c.teachers if t in ids), default=-1)
        return depth[rid]

    rows = []
    for g in groups:
        states = {c.run_id: run_state(c) for c in g}
        rows.append({"runs": [c.run_id for c in g], "status": group_state(list(states.values())),
                     "run_status": states, "stage": max(d(c.run_id) for c in g)})
    return rows


def format_status(rows: list[dict]) -> str:
    counts = {s: sum(r["status"] == s for r in rows) for s in STATES}
    lines = [f"stage {r['stage']}: {r['status']:<7} {len(r['runs'])} run(s): "
             + ", ".join(f"{rid} ({st})" if st != r["status"] else rid for rid, st in r["run_status"].items())
             for r in rows]
    return "\n".join(lines + ["status: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + " group(s)"])


# ------------------------------------------------------------------------------ launch
def launch(configs_or_groups, launcher: str = "local", *, jobs: int | None = None, device: str = "auto",
           threads: int | None = None, log=print, priority=None, poll_s: float | None = None,
           job_class=GroupJob, **kwargs) -> list[dict]:
    """Train `configs_or_groups` (RunConfigs, grouped by engine.sweep.schedule, or a list of
    groups) with `launcher` "local" (engine.sweep.run_parallel) or "slurm" (one submitit job per
    group). Keywords of SLURM_DEFAULTS configure the slurm launcher; the others go to
    train_group. Returns one result dict per group (see the module docstring)."""
    if launcher not in LAUNCHERS:
        raise UserError(f"unknown launcher '{launcher}'; known: {', '.join(LAUNCHERS)}")
    slurm = {k: kwargs.pop(k) for k in list(kwargs) if k in SLURM_DEFAULTS}
    train_kwargs = kwargs
    if launcher == "local":
        changed = sorted(k for k, v in slurm.items() if v != SLURM_DEFAULTS[k])
        if changed:
            raise UserError(f"{', '.join(changed)} appl{'ies' if len(changed) == 1 else 'y'} to the slurm launcher "
                            f"only (launcher 'local' runs engine.sweep.run_parallel)")
        from engine.sweep import run_parallel

        return run_parallel(configs_or_groups, jobs, device=device, threads=threads or 1, log=log,
                            priority=priority, **train_kwargs)
    options = check_slurm_options({**SLURM_DEFAULTS, **slurm})
    return _SubmititDriver(_groups(configs_or_groups), options, jobs=jobs, device=device, threads=threads,
                           log=log, priority=priority, poll_s=poll_s, job_class=job_class,
                           train_kwargs=train_kwargs).run()


def check_slurm_options(o: dict) -> dict:
    if o["executor"] not in EXECUTORS:
        raise UserError(f"unknown executor '{o['executor']}'; known: {', '.join(EXECUTORS)}")
    for key in ("gpus_per_job", "max_retries", "max_requeues"):
        if not isinstance(o[key], int) or o[key] < 0:
            raise UserError(f"{key} must be an integer >= 0, got {o[key]!r}")
    for key in ("cpus_per_task", "tasks_per_job"):
        if o[key] is not None and (not isinstance(o[key], int) or o[key] < 1):
            raise UserError(f"{key} must be an integer >= 1, got {o[key]!r}")
    if not isinstance(o["time_min"], (int, float)) or o["time_min"] <= 0:
        raise UserError(f"time_min must be > 0 minutes, got {o['time_min']!r}")
    if o["mem_gb"] is not None and not o["mem_gb"] > 0:
        raise UserError(f"mem_gb must be > 0, got {o['mem_gb']!r}")
    if o["executor"] == "slurm":
        import shutil

        if shutil.which("sbatch") is None:
            raise UserError("the slurm launcher needs sbatch on PATH (run it on a Slurm login node); "
                            "--executor local runs the same jobs through submitit's local executor")
    o = dict(o, setup=tuple(o["setup"] or ()), slurm_options=dict(o["slurm_options"] or {}))
    return o


def sweep_name(groups) -> str:
    """A stable folder name for a set of runs: '<experiment>-<hash of the run ids>'."""
    from collections import Counter

    ids = sorted(c.run_id for g in groups for c in g)
    tags = Counter(c.experiment for g in groups for c in g)
    tags = Counter({t: n for t, n in tags.items() if t != "teachers"}) or tags
    tag = tags.most_common(1)[0][0] if tags else "sweep"
    return f"{tag}-{hashlib.sha1(' '.join(ids).encode()).hexdigest()[:10]}"


def group_id(group) -> str:
    return hashlib.sha1(" ".join(sorted(c.run_id for c in group)).encode()).hexdigest()[:12]


SACCT_EVERY_S = 120     # a job that died without a result is seen within this (submitit alone: up to 10 min)


class _SubmititDriver:
    """Submits ready groups (their in-sweep teachers finished) as job arrays, polls, retries."""

    def __init__(self, groups, options, *, jobs, device, threads, log, priority, poll_s, job_class, train_kwargs):
        self.groups, self.o, self.log, self.job_class = groups, options, log, job_class
        self.local = options["executor"] == "local"
        self.cap = jobs if jobs else ((os.cpu_count() or 1) if self.local else None)
        self.poll_s = poll_s if poll_s is not None else (0.5 if self.local else 20.0)
        self.result_wait_s = 2.0 if self.local else 60.0     # a shared file system may lag
        self.threads = threads or options["cpus_per_task"] or 1
        self.tasks = options["tasks_per_job"] or max(1, options["gpus_per_job"])
        self.kwargs = dict(train_kwargs, device=device)
        self.kwargs.setdefault("quiet", False)     # per-epoch lines in each job's log (<job>_0_log.out)
        self.priority = priority
        self.root = str(results_root().resolve())
        self.folder = Path(options["folder"] or Path(self.root) / "slurm" / sweep_name(groups)).resolve()
        self.ledger_file = self.folder / "jobs.json"

    # -------------------------------------------------------------- submitit plumbing
    def executor(self):
        import submitit

        o = self.o
        ex = submitit.AutoExecutor(folder=self.folder, cluster=o["executor"],
                                   slurm_max_num_timeout=o["max_requeues"], local_max_num_timeout=o["max_requeues"])
        gpus = o["gpus_per_job"]
        if self.kwargs["device"] == "cpu" or (self.local and not _cuda_here()):
            gpus = 0
        params = {"name": f"logit-kd-{sweep_name(self.groups)}", "timeout_min": int(max(1, round(o["time_min"]))),
                  "gpus_per_node": gpus or None, "tasks_per_node": self.tasks, "nodes": 1,
                  "cpus_per_task": o["cpus_per_task"], "mem_gb": o["mem_gb"]}
        if not self.local:
            params |= {"slurm_partition": o["partition"], "slurm_account": o["account"], "slurm_qos": o["qos"],
                       "slurm_constraint": o["constraint"], "slurm_setup": list(o["setup"]) or None,
                       # --requeue: Slurm may requeue the job (pre-emption, node failure); it resumes
                       "slurm_additional_parameters": {"requeue": True, **o["slurm_options"]},
                       "slurm_signal_delay_s": o["signal_delay_s"]}
            if self.cap:
                params["slurm_array_parallelism"] = self.cap
        elif o["setup"]:
            params["local_setup"] = list(o["setup"])
        ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
        return ex

    def submit(self, ex, indices: list[int]) -> list:
        with ex.batch():          # one Slurm job array for the groups that became ready together
            jobs = [ex.submit(self.job_class(self.groups[i], self.kwargs, self.root, self.threads)) for i in indices]
        return jobs

    def outcome(self, job) -> tuple[str, str | None, bool]:
        """(status ok | failed, error, retryable) of a finished job."""
        first = job.task(0) if len(getattr(job, "_tasks", (0,))) > 1 else job
        t0 = time.time()
        while not first.paths.result_pickle.exists() and time.time() - t0 < self.result_wait_s:
            time.sleep(0.2)
        if not first.paths.result_pickle.exists():
            return ("failed", f"job {job.job_id} ended without a result (state {job.state}: killed, out of "
                              f"memory, time limit or node failure?); log: {first.paths.stderr}", True)
        exc = first.exception()
        if exc is None:
            return "ok", None, False
        error = _last_error(str(exc))
        marker = "DeterministicFailure: "
        if error.startswith(marker):
            return "failed", error[len(marker):], False
        return "failed", error, True

    def read_ledger(self) -> dict:
        try:
            return json.loads(self.ledger_file.read_text())
        except (OSError, ValueError):
            return {}

    def attach(self, job_id: str):
        """A still queued or running Slurm job of an earlier driver, or None."""
        if self.local:
            return None           # local jobs are children of the driver that started them
        import submitit

        try:
            job = submitit.SlurmJob(folder=self.folder, job_id=job_id, tasks=tuple(range(self.tasks)))
            return None if job.done(force_check=True) else job
        except Exception:         # noqa: BLE001  unknown job: submit anew
            return None

    # -------------------------------------------------------------- the loop
    def run(self) -> list[dict]:
        from engine.sweep import _precheck, triage

        groups, log = self.groups, self.log
        results: list[dict | None] = [None] * len(groups)
        attempts = {i: 0 for i in range(len(groups))}
        job_ids = {i: [] for i in range(len(groups))}

        def record(i, status, error=None, seconds=0.0, worker="", **extra):
            results[i] = {"runs": [c.run_id for c in groups[i]], "status": status, "seconds": seconds,
                          "error": error, "worker": worker, "attempts": attempts[i], "job_ids": list(job_ids[i]),
                          **extra}

        pending = triage(groups, record)
        if not pending:
            return results
        # the same checks as the local launcher, here, before anything is queued (engine.validate)
        errors = _precheck(groups, pending, self.kwargs.get("data_root"),
                           self.kwargs.get("download", False)) if self.o["precheck"] else {}
        for i, error in errors.items():
            record(i, "failed", error)
            log(f"  FAILED {_describe(groups[i])} before submission: {error}")
        pending = [i for i in pending if results[i] is None]
        ours = {c.run_id: i for i in range(len(groups)) for c in groups[i]}
        by_id = {c.run_id: c for g in groups for c in g}
        over = {i for i in range(len(groups)) if results[i] is not None}      # done, failed or blocked

        def state(i):
            """ready, wait (a teacher's group is not over) or the run id of a teacher that did not finish
            (as engine.sweep.run_parallel: students of a failed group's healthy runs still train)."""
            for t in sorted({t for c in groups[i] for t in c.teachers if t in ours and ours[t] != i}):
                if ours[t] not in over:
                    return "wait"
                if not RunDir(by_id[t]).finished:
                    return t
            return "ready"

        started = {}
        running: dict[int, object] = {}
        self.folder.mkdir(parents=True, exist_ok=True)
        ledger = self.read_ledger()
        for i in list(pending):            # re-attach to this sweep's Slurm jobs still in the queue
            entry = ledger.get(group_id(groups[i]))
            job = self.attach(entry["job_id"]) if entry else None
            if job is not None:
                pending.remove(i)
                running[i], attempts[i], started[i] = job, entry["attempt"], time.time()
                job_ids[i].append(job.job_id)
                log(f"  attached to job {job.job_id} of an earlier driver: {_describe(groups[i])}")
        pending.sort(key=(lambda i: self.priority(groups[i])) if self.priority else (lambda i: -len(groups[i])))
        if not pending and not running:
            return results
        ex = self.executor()
        log(f"sweep: {sum(len(groups[i]) for i in pending) + sum(len(groups[i]) for i in running)} run(s) in "
            f"{len(pending) + len(running)} group(s) through submitit ({self.o['executor']} executor, "
            f"folder {self.folder})")
        last_sacct = time.time()
        try:
            while pending or running:
                ready = []
                for i in list(pending):
                    st = state(i)
                    if st == "ready":
                        ready.append(i)
                    elif st != "wait":
                        pending.remove(i)
                        over.add(i)
                        record(i, "blocked", f"its teacher {st} did not finish")
                        log(f"  blocked {_describe(groups[i])}: its teacher {st} did not finish")
                if self.cap:
                    ready = ready[: max(0, self.cap - len(running))]
                if ready:
                    submitted = list(zip(ready, self.submit(ex, ready)))
                    for i, job in submitted:
                        pending.remove(i)
                        running[i], started[i] = job, time.time()
                        attempts[i] += 1
                        job_ids[i].append(job.job_id)
                        ledger[group_id(groups[i])] = {"job_id": job.job_id, "attempt": attempts[i],
                                                       "runs": [c.run_id for c in groups[i]]}
                    atomic_write_text(self.ledger_file, json.dumps(ledger, indent=1) + "\n")   # before anything can fail
                    for i, job in submitted:
                        log(f"  submitted job {job.job_id} (attempt {attempts[i]}): {_describe(groups[i])}")
                if not running:
                    if pending:
                        raise RuntimeError("sweep deadlock: groups wait for teachers that never run")
                    break
                if not self.local and time.time() - last_sacct > SACCT_EVERY_S:
                    type(next(iter(running.values()))).watcher.update()   # one sacct call for all jobs
                    last_sacct = time.time()
                done = [i for i, job in running.items() if job.done()]
                if not done:
                    time.sleep(self.poll_s)
                    continue
                for i in done:
                    job = running.pop(i)
                    status, error, retryable = self.outcome(job)
                    seconds = time.time() - started[i]
                    if status == "ok":
                        over.add(i)
                        res = job.task(0).result() if self.tasks > 1 else job.result()
                        record(i, **{**res, "seconds": seconds})
                        log(f"  ok {_describe(groups[i])} in {seconds:.0f} s (job {job.job_id})")
                    elif retryable and attempts[i] <= self.o["max_retries"]:
                        pending.insert(0, i)
                        log(f"  job {job.job_id} failed ({error}); resubmitting, resumes from its checkpoints "
                            f"(retry {attempts[i]} of {self.o['max_retries']})")
                    else:
                        over.add(i)
                        why = "" if retryable else " (not retried: it would fail the same way)"
                        record(i, "failed", error, seconds, f"job {job.job_id}")
                        _mark_failed_from_driver(groups[i], error, job)
                        log(f"  FAILED {_describe(groups[i])} after {attempts[i]} attempt(s): {error}{why}")
        except KeyboardInterrupt:
            if self.local:
                for job in running.values():
                    job.cancel(check=False)
                log("interrupted: local jobs cancelled; rerun the same command to resume from the checkpoints")
            else:
                log(f"interrupted: {len(running)} Slurm job(s) keep running "
                    f"({', '.join(j.job_id for j in running.values())}); rerun the same command to re-attach "
                    f"to them, or scancel them")
            raise
        return results


def _last_error(trace: str) -> str:
    """'TypeError: message' from the last exception line of a traceback (module prefix dropped)."""
    import re

    for line in reversed(trace.splitlines()):
        m = re.match(r"^([A-Za-z_][\w.]*\.)?([A-Za-z_]\w*(Error|Exception|Failure|Interrupt|Exit|Diverged)): ?(.*)$",
                     line.strip())
        if m:
            return f"{m.group(2)}: {m.group(4)}"
    return trace.strip().splitlines()[-1] if trace.strip() else "failed"


def _mark_failed_from_driver(group, error, job) -> None:
    """A job that died without running its except clause (killed, OOM): failed.json from the driver."""
    for c in group:
        _write_failed(c, {"run_id": c.run_id, "reason": error, "error": error, "worker": f"job {job.job_id}",
                          "time": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _describe(group) -> str:
    return f"[{len(group)} run(s): {', '.join(c.slug for c in group[:3])}{', ...' if len(group) > 3 else ''}]"


# ------------------------------------------------------------------------------ CLI helpers
def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise ValueError(text)
    return v


def _nonnegative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise ValueError(text)
    return v


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise ValueError(text)
    return v


_positive_int.__name__ = "positive integer"
_nonnegative_int.__name__ = "integer >= 0"
_positive_float.__name__ = "positive number"


def add_launcher_args(parser: argparse.ArgumentParser) -> None:
    """--launcher and the Slurm flags (engine.launch.launcher_options turns them into launch() keywords)."""
    g = parser.add_argument_group("launcher (docs/cluster.md)")
    g.add_argument("--launcher", default="local", choices=LAUNCHERS,
                   help="local: worker processes on this machine (default); slurm: one Slurm job per group "
                        "of runs, through submitit")
    g.add_argument("--executor", choices=EXECUTORS, help="slurm launcher: submitit executor, slurm (sbatch, "
                   "default) or local (the same jobs as local processes: a rehearsal without a cluster)")
    g.add_argument("--partition", help="slurm: partition of the jobs")
    g.add_argument("--gpus-per-job", type=_nonnegative_int, metavar="N",
                   help="slurm: GPUs per job (default 1; N > 1 trains each group data-parallel on N GPUs)")
    g.add_argument("--cpus-per-task", type=_positive_int, metavar="N", help="slurm: CPUs per task (= torch threads)")
    g.add_argument("--time", type=_positive_float, metavar="MINUTES", dest="time_min",
                   help="slurm: time limit per job in minutes (default 240); a longer group is requeued and "
                        "resumes from its checkpoint")
    g.add_argument("--mem-gb", type=_positive_float, metavar="GB", help="slurm: memory per job")
    g.add_argument("--account", help="slurm: account to charge")
    g.add_argument("--qos", help="slurm: quality of service")
    g.add_argument("--constraint", help="slurm: node features, e.g. a100")
    g.add_argument("--slurm-setup", action="append", metavar="LINE",
                   help="slurm: shell line run before each job (repeatable), e.g. 'module load cuda'")
    g.add_argument("--slurm-option", action="append", metavar="KEY=VALUE",
                   help="slurm: any other sbatch option (repeatable), e.g. exclude=node12")
    g.add_argument("--max-retries", type=_nonnegative_int, metavar="N",
                   help="slurm: resubmissions of a failed job, resuming from checkpoints (default 2)")
    g.add_argument("--max-requeues", type=_nonnegative_int, metavar="N",
                   help="slurm: checkpointed requeues of one job at its time limit (default 30)")
    g.add_argument("--no-precheck", dest="precheck", action="store_const", const=False,
                   help="slurm: skip validating the groups in the driver first (when the data exist only "
                        "on the compute nodes, e.g. staged by --slurm-setup)")
    g.add_argument("--slurm-folder", metavar="DIR",
                   help="slurm: submitit's folder for pickles and logs (default <results>/slurm/<sweep>/)")


_FLAG_OF = {"executor": "--executor", "partition": "--partition", "gpus_per_job": "--gpus-per-job",
            "cpus_per_task": "--cpus-per-task", "time_min": "--time", "mem_gb": "--mem-gb",
            "account": "--account", "qos": "--qos", "constraint": "--constraint", "setup": "--slurm-setup",
            "slurm_options": "--slurm-option", "max_retries": "--max-retries", "max_requeues": "--max-requeues",
            "folder": "--slurm-folder", "precheck": "--no-precheck"}


def launcher_options(args: argparse.Namespace) -> dict:
    """launch() keywords from add_launcher_args' flags; a Slurm flag with --launcher local is a UserError."""
    given = {
        "executor": args.executor, "partition": args.partition, "gpus_per_job": args.gpus_per_job,
        "cpus_per_task": args.cpus_per_task, "time_min": args.time_min, "mem_gb": args.mem_gb,
        "account": args.account, "qos": args.qos, "constraint": args.constraint,
        "setup": tuple(args.slurm_setup) if args.slurm_setup else None,
        "slurm_options": _parse_slurm_options(args.slurm_option), "max_retries": args.max_retries,
        "max_requeues": args.max_requeues, "folder": args.slurm_folder, "precheck": args.precheck}
    given = {k: v for k, v in given.items() if v is not None}
    if args.launcher == "local" and given:
        flags = ", ".join(_FLAG_OF[k] for k in given)
        raise UserError(f"{flags} appl{'ies' if len(given) == 1 else 'y'} to --launcher slurm only")
    return {"launcher": args.launcher, **given}


def _parse_slurm_options(pairs) -> dict | None:
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--slurm-option takes KEY=VALUE (an sbatch option without its dashes), got '{pair}'")
        out[key.lstrip("-").replace("-", "_")] = value
    return out
