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
    good, dying = teacher(0), teacher(1)
    bad = teacher(2, model_options={"no_such_option": 1})             # a user error: not retried
    student = lambda t, tau, seed=0: make_config(  # noqa: E731
        "launch", "synthetic", "cnn1d_student", loss="kl", loss_hparams={"tau": tau}, teachers=[t.run_id],
        seed=seed, dataset_options=DATA, model_options={"length": 24}, recipe_overrides=EPOCHS)
    students = [student(good, 1.0), student(good, 4.0)]                # one group: same teacher, seed
    orphan = student(dying, 4.0)
    return good, dying, bad, students, orphan


class ChaosJob(GroupJob):
    """A cluster's misfortunes, inside the real job processes: a group holding a run of `DIE`
    is killed (SIGKILL, as by the OOM killer or a node failure: no result, no except clause)
    on every attempt; a group holding a run of `PREEMPT` receives Slurm's pre-emption signal
    (USR2) once, after its first epoch's checkpoint. Every trained epoch is logged."""
    DIE: frozenset = frozenset()
    PREEMPT: frozenset = frozenset()

    def __call__(self):
        if {c.run_id for c in self.configs} & self.DIE:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__()

    def train(self, configs, **kwargs):
        from engine import trainer

        ids = {c.run_id for c in configs}
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


def test_slurm_launcher_through_the_local_executor(results, tmp_path, monkeypatch, capsys):
    good, dying, bad, students, orphan = plan()
    ChaosJob.DIE, ChaosJob.PREEMPT = frozenset({dying.run_id}), frozenset({students[0].run_id})
    logs = []
    out = launch([*students, orphan, good, dying, bad], "slurm", executor="local", jobs=2, device="cpu",
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
    # a user error is reported after one attempt (it would fail the same way again)
    assert by_run[bad.run_id]["status"] == "failed" and by_run[bad.run_id]["attempts"] == 1
    assert "UserError" in by_run[bad.run_id]["error"] and "no_such_option" in by_run[bad.run_id]["error"]
    assert json.loads(RunDir(bad).failed_file.read_text())["error"].startswith("UserError")

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
    local = launch([good, *students], "local", jobs=2, device="cpu", log=logs.append)
    assert {r["status"] for r in local} == {"ok"}
    for c in [good, *students]:
        assert metric_rows(c, local_root) == metric_rows(c, results), c.slug
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(results))

    # status from the run store alone: done, failed, queued (the blocked student never started) ...
    rows = {tuple(r["runs"]): r["status"] for r in status([good, dying, bad, *students, orphan])}
    assert rows == {(good.run_id,): "done", (dying.run_id,): "failed", (bad.run_id,): "failed",
                    tuple(c.run_id for c in students): "done",
                    (orphan.run_id,): "queued"}

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
        sweep_cli([str(save_configs([good, *students, orphan, bad], tmp_path / "all.json")), "--status"])
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
