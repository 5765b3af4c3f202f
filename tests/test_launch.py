"""The launchers (engine/launch.py): the slurm path through submitit's LocalExecutor (real job
processes, real pickling, the same driver as on a cluster) against the local launcher; retries,
pre-emption, blocked students, the status command and the CLI's one-line errors."""
import json
import os
import signal
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

from engine import RunDir, make_config, teacher_config
from engine.launch import GroupJob, launch, status
from engine.sweep import save_configs
from reproduce.sweep import main as sweep_cli

DATA = {"num_train": 96, "num_test": 32, "num_classes": 4, "shape": [1, 24]}
EPOCHS = {"epochs": 2}

pytestmark = pytest.mark.usefixtures("results")    # conftest: a temporary results/data folder
cloudpickle.register_pickle_by_value(sys.modules[__name__])   # ChaosJob travels by value into the jobs


def plan():
    teacher = lambda seed, **kw: teacher_config("synthetic", "cnn1d_teacher", seed=seed,  # noqa: E731
                                                 dataset_options=DATA, recipe_overrides=EPOCHS, **kw)
    good, dying, unlucky = teacher(0), teacher(1), teacher(2)
    bad = teacher(3, model_options={"no_such_option": 1})             # a bad config: refused before submission
    student = lambda t, tau, seed=0: make_config(  # noqa: E731
        "launch", "synthetic", "cnn1d_student", loss="kl", loss_hparams={"tau": tau}, teachers=[t.run_id],
        seed=seed, dataset_options=DATA, model_options={"length": 24}, recipe_overrides=EPOCHS)
    students = [student(good, 1.0), student(good, 4.0)]                # one group: same teacher, seed
    orphan = student(dying, 4.0)
    return good, dying, unlucky, bad, students, orphan


class ChaosJob(GroupJob):
    """A cluster's misfortunes, inside the real job processes: a group holding a run of `DIE`
    is killed (SIGKILL, as by the OOM killer or a node failure: no result, no except clause)
    on every attempt; one holding a run of `USER_ERROR` raises a UserError in training (one
    that validation cannot see, e.g. data missing on the compute nodes); one holding a run of
    `PREEMPT` receives Slurm's pre-emption signal (USR2) once, after its first epoch's
    checkpoint. Every trained epoch is logged."""
    DIE: frozenset = frozenset()
    USER_ERROR: frozenset = frozenset()
    PREEMPT: frozenset = frozenset()

    def __call__(self):
        if {c.run_id for c in self.configs} & self.DIE:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__()

    def train(self, configs, **kwargs):
        from engine import trainer

        ids = {c.run_id for c in configs}
        if ids & self.USER_ERROR:
            from common import UserError

            raise UserError("no data here: /scratch/cifar-100-python is missing on this node")
        log, marker = Path(self.root) / "epochs.log", Path(self.root) / "preempted"
        original = trainer.Trainer._train_epoch

        def logged(tr, members, epoch):
            original(tr, members, epoch)
            with open(log, "a") as f:
                f.write(f"{members[0].config.run_id} {epoch} {os.getpid()}\n")
            if ids & self.PREEMPT and not marker.exists():
                marker.write_text("once")
                os.kill(os.getpid(), signal.SIGUSR2)       # submitit checkpoints and requeues the job
                time.sleep(30)

        trainer.Trainer._train_epoch = logged
        return GroupJob.train(configs, **kwargs)


def metric_rows(config, root):
    return [{k: v for k, v in r.items() if k != "train_time_s"} for r in RunDir(config, root=root).metrics()]


@pytest.mark.slow
def test_slurm_launcher_through_the_local_executor(results, tmp_path, monkeypatch, capsys):
    good, dying, unlucky, bad, students, orphan = plan()
    ChaosJob.DIE, ChaosJob.USER_ERROR = frozenset({dying.run_id}), frozenset({unlucky.run_id})
    ChaosJob.PREEMPT = frozenset({students[0].run_id})
    logs = []
    out = launch([*students, orphan, good, dying, unlucky, bad], "slurm", executor="local", jobs=2, device="cpu",
                 max_retries=1, time_min=30, log=logs.append, job_class=ChaosJob)
    by_run = {rid: r for r in out for rid in r["runs"]}
    assert by_run[good.run_id]["status"] == "ok" and by_run[students[0].run_id]["status"] == "ok"
    assert by_run[students[0].run_id] is by_run[students[1].run_id]          # one job for the group
    assert by_run[good.run_id]["worker"].startswith("local:")

    # the killed group was retried (max_retries 1: two attempts), then failed and blocked its student
    assert by_run[dying.run_id]["status"] == "failed" and by_run[dying.run_id]["attempts"] == 2
    assert len(set(by_run[dying.run_id]["job_ids"])) == 2
    assert "without a result" in by_run[dying.run_id]["error"]
    assert sum("resubmitting" in line for line in logs) == 1
    assert by_run[orphan.run_id]["status"] == "blocked" and not RunDir(orphan).path.exists()
    # a bad config is refused before anything is queued; a user error in a job is not retried
    assert by_run[bad.run_id]["status"] == "failed" and by_run[bad.run_id]["attempts"] == 0
    assert "no_such_option" in by_run[bad.run_id]["error"] and not RunDir(bad).path.exists()
    assert by_run[unlucky.run_id]["status"] == "failed" and by_run[unlucky.run_id]["attempts"] == 1
    assert by_run[unlucky.run_id]["error"].startswith("UserError: no data here")
    assert json.loads(RunDir(unlucky).failed_file.read_text())["error"].startswith("UserError: no data here")

    # students started after their teacher finished
    assert RunDir(good).summary_file.stat().st_mtime_ns <= RunDir(students[0]).config_file.stat().st_mtime_ns
    # the pre-empted group was requeued by submitit (same job, a new process) and resumed from its
    # checkpoint: epoch 0 trained once, epoch 1 after the requeue
    rows = [line.split() for line in (results / "epochs.log").read_text().splitlines()]
    pre = [(int(epoch), pid) for rid, epoch, pid in rows if rid == students[0].run_id]
    assert [e for e, _ in pre] == [0, 1] and pre[0][1] != pre[1][1]
    assert by_run[students[0].run_id]["attempts"] == 1 and len(by_run[students[0].run_id]["job_ids"]) == 1

    # the same runs through the local launcher (engine.sweep.run_parallel), in another run store
    local_root = tmp_path / "local"
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(local_root))
    local = launch([good, *students], "local", jobs=1, device="cpu", log=logs.append)
    assert {r["status"] for r in local} == {"ok"}
    for c in [good, *students]:
        assert metric_rows(c, local_root) == metric_rows(c, results), c.slug
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(results))

    # status from the run store alone: done, failed, queued (the blocked student never started) ...
    rows = {tuple(r["runs"]): r["status"] for r in status([good, dying, unlucky, *students, orphan])}
    assert rows == {(good.run_id,): "done", (dying.run_id,): "failed", (unlucky.run_id,): "failed",
                    tuple(c.run_id for c in students): "done", (orphan.run_id,): "queued"}

    # ... and running: a run holding its lock, or one with a checkpoint and no failure
    from filelock import FileLock

    locked, started = make_config("launch", "synthetic", "cnn1d_student", loss="kl", teachers=[good.run_id],
                                  seed=7, dataset_options=DATA, model_options={"length": 24}), \
        teacher_config("synthetic", "cnn1d_teacher", seed=8, dataset_options=DATA)
    RunDir(locked).path.mkdir(parents=True)
    RunDir(started).path.mkdir(parents=True)
    RunDir(started).checkpoint_file.write_bytes(b"")
    with FileLock(RunDir(locked).path / "run.lock"):
        assert [r["status"] for r in status([[locked], [started]])] == ["running", "running"]
    assert [r["status"] for r in status([[locked], [started]])] == ["queued", "running"]

    # the CLI: finished groups are skipped without a job; --status lists the four states
    path = save_configs([good, *students], tmp_path / "configs.json")
    again = sweep_cli([str(path), "--launcher", "slurm", "--executor", "local", "--device", "cpu"])
    assert [r["status"] for r in again] == ["done", "done"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        sweep_cli([str(save_configs([good, *students, orphan, unlucky], tmp_path / "all.json")), "--status"])
    assert exit_.value.code == 1                                   # not everything is done
    listing = capsys.readouterr().out
    assert "2 done" in listing and "1 queued" in listing and "1 failed" in listing and "0 running" in listing


@pytest.mark.parametrize("argv, message", [
    (["--launcher", "local", "--partition", "gpu"], "--partition applies to --launcher slurm only"),
    (["--launcher", "slurm", "--time", "0"], "argument --time"),
    (["--launcher", "slurm", "--gpus-per-job", "two"], "argument --gpus-per-job"),
    (["--launcher", "pbs"], "argument --launcher"),
    (["--launcher", "slurm", "--slurm-option", "exclude"], "--slurm-option takes KEY=VALUE"),
    (["--launcher", "slurm", "--executor", "slurm"], "needs sbatch on PATH"),
    (["--status", "--launcher", "slurm"], "--status reads the run store"),
])
def test_bad_flags_give_one_line_errors(tmp_path, argv, message, monkeypatch, capsys):
    good = teacher_config("synthetic", "cnn1d_teacher", dataset_options=DATA)
    path = save_configs([good], tmp_path / "configs.json")
    monkeypatch.setenv("PATH", str(tmp_path))                   # no sbatch here, whatever the machine
    with pytest.raises(SystemExit) as exit_:
        sweep_cli([str(path), *argv])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not RunDir(good).path.exists()


# ------------------------------------------------------------------------------ a fake Slurm
FAKE_SBATCH = r'''
import os, re, subprocess, sys
from pathlib import Path
state = Path(os.environ["FAKE_SLURM"])
script = Path(sys.argv[-1]).read_text()
counter = state / "counter"
base = int(counter.read_text()) + 1 if counter.exists() else 4000
counter.write_text(str(base))
with open(state / "sbatch.log", "a") as f:
    f.write(script.replace("\n", "\\n") + "\n")
array = re.search(r"#SBATCH --array=0-(\d+)", script)
ntasks = re.search(r"#SBATCH --ntasks-per-node=(\d+)", script)
for a in range(int(array.group(1)) + 1) if array else [None]:
    jid = str(base) if a is None else f"{base}_{a}"
    env = dict(os.environ, SLURM_JOB_ID=str(base * 100 + (a or 0)), SLURM_NTASKS=ntasks.group(1) if ntasks else "1",
               SLURM_JOB_NUM_NODES="1", SLURM_NODEID="0", SLURM_JOB_NODELIST="localhost")
    if a is not None:
        env |= {"SLURM_ARRAY_JOB_ID": str(base), "SLURM_ARRAY_TASK_ID": str(a)}
    (state / jid).write_text("PENDING")
    runner = f"echo RUNNING > {state / jid}; bash {sys.argv[-1]} && echo COMPLETED > {state / jid} || echo FAILED > {state / jid}"
    subprocess.Popen(["bash", "-c", runner], env=env, start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"Submitted batch job {base}")
'''
FAKE_SRUN = r'''
import os, subprocess, sys
args = sys.argv[1:]
paths = {}
while args[0].startswith("--"):
    flag = args.pop(0)
    if flag in ("--output", "--error"):
        paths[flag] = args.pop(0)
env = os.environ
fill = lambda p, t: (p.replace("%A", env.get("SLURM_ARRAY_JOB_ID", "")).replace("%a", env.get("SLURM_ARRAY_TASK_ID", ""))
                     .replace("%j", env["SLURM_JOB_ID"]).replace("%t", str(t)))
procs = []
for t in range(int(env.get("SLURM_NTASKS", "1"))):
    procs.append(subprocess.Popen(args, env=dict(env, SLURM_PROCID=str(t), SLURM_LOCALID=str(t)),
                                  stdout=open(fill(paths["--output"], t), "a"), stderr=open(fill(paths["--error"], t), "a")))
sys.exit(max(p.wait() for p in procs))
'''
FAKE_SACCT = r'''
import os, sys
from pathlib import Path
state = Path(os.environ["FAKE_SLURM"])
wanted = {sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "-j"}
print("JobID|State|NodeList")
for f in sorted(state.iterdir()):
    if f.name.split("_")[0] in wanted:
        print(f"{f.name}|{f.read_text().strip()}|localhost")
'''


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sbatch / srun / sacct stand-ins on PATH: sbatch runs each (array) task of the script at
    once in the background with Slurm's variables, sacct reports their states. The real
    SlurmExecutor of submitit drives them."""
    bin_dir, state = tmp_path / "fake-slurm-bin", tmp_path / "fake-slurm-state"
    bin_dir.mkdir()
    state.mkdir()
    for name, body in {"sbatch": FAKE_SBATCH, "srun": FAKE_SRUN, "sacct": FAKE_SACCT}.items():
        (bin_dir / name).write_text(f"#!{sys.executable}\n{body}")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(state))
    return state


@pytest.mark.slow
def test_slurm_executor_arrays_and_reattach_after_a_driver_interrupt(results, fake_slurm):
    """Through submitit's SlurmExecutor (against a fake Slurm): two ready groups go in as one
    job array with the flags' resources; a driver interrupted after submitting leaves the jobs
    running, and the same command again re-attaches to them instead of submitting twice."""
    teachers = [teacher_config("synthetic", "cnn1d_teacher", seed=s, dataset_options=DATA, recipe_overrides=EPOCHS)
                for s in (0, 1)]
    options = dict(partition="gpu", gpus_per_job=0, cpus_per_task=1, time_min=30, device="cpu", poll_s=0.5,
                   slurm_options={"exclude": "node12"})

    def interrupt(line):
        if "submitted job" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        launch(teachers, "slurm", log=interrupt, **options)
    logs = []
    out = launch(teachers, "slurm", log=logs.append, **options)
    assert [r["status"] for r in out] in (["ok", "ok"], ["done", "done"])   # attached, or already finished
    if out[0]["status"] == "ok":
        assert sum("attached to job" in line for line in logs) == 2
        assert out[0]["job_ids"] == [out[0]["worker"].split("@")[0].removeprefix("slurm:")]   # an array task
    assert all(RunDir(t).finished for t in teachers)
    scripts = (fake_slurm / "sbatch.log").read_text().splitlines()
    assert len(scripts) == 1                                               # one array, submitted once
    for flag in ("--array=0-1", "--partition=gpu", "--time=30", "--cpus-per-task=1", "--signal=USR2@120",
                 "--requeue", "--exclude=node12"):
        assert flag in scripts[0], flag
    assert "--gpus-per-node" not in scripts[0]
