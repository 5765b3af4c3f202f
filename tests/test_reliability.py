"""Reliability of runs (docs/runs.md): every bad input is one line and writes nothing, two
processes on one run id, lost and torn log lines, corrupt files and the commands that fix them,
a diverging student in a group, a kill in the middle of a checkpoint write (whose lock is then
free: no stale locks)."""
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from common import UserError
from engine import LabelNoise, RunDir, TrainingDiverged, make_config, teacher_config, train, train_group
from engine.rundir import RunLock
from engine.sweep import _train_in_worker, run_parallel
from run_helpers import interrupted
from reproduce.store import main as store_cli
from reproduce.train import main as train_cli

ROOT = Path(__file__).resolve().parents[1]
DATA = {"num_train": 192, "num_test": 96, "num_classes": 4, "shape": [1, 24]}
BASE = ["--dataset", "synthetic", "--dataset-option", "num_train=192", "--dataset-option", "num_test=96",
        "--dataset-option", "num_classes=4", "--dataset-option", "shape=[1,24]", "--recipe", "smoke", "--quiet"]
STUDENT = BASE + ["--model", "cnn1d_student", "--model-option", "length=24"]
WITH_TEACHER = STUDENT + ["--teacher", "cnn1d_teacher"]

pytestmark = pytest.mark.usefixtures("results")    # conftest: a temporary results/data folder


def files(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")} if root.exists() else set()


def comparable(rows):
    return [{k: v for k, v in r.items() if k != "train_time_s"} for r in rows]


def teacher(**kw):
    return train(teacher_config("synthetic", "cnn1d_teacher", dataset_options=DATA, **kw), quiet=True)


def student(teachers, **kw):
    return make_config("reliability", "synthetic", "cnn1d_student", loss=kw.pop("loss", "kl"), teachers=teachers,
                       dataset_options=DATA, model_options={"length": 24}, **kw)


# ------------------------------------------------------------------ pre-states of some bad inputs
def corrupt_summary(t):
    t.summary_file.write_text('{"final": {"test_top1": 9')


def corrupt_model(t):
    t.model_file.write_bytes(t.model_file.read_bytes()[:-10] + b"0123456789")


def five_classes(argv):
    return [a.replace("num_classes=4", "num_classes=5") for a in argv]


# (entry point, argv, the message's part, pre-state). {teacher} is a trained teacher's run id.
BAD = [
    ("train", STUDENT[:-2] + ["--model", "resnet999"], "unknown model 'resnet999'", None),
    ("train", STUDENT + ["--model-option", "nope=1"], "has no hyperparameter nope", None),
    ("train", STUDENT + ["--model-option", "length=abc"], "option length must be an integer", None),
    ("train", BASE + ["--model", "cnn2d_student"], "does not fit synthetic's 1-D signals", None),
    ("train", BASE + ["--model", "mlp1d"], "does not fit", None),
    ("train", STUDENT + ["--teacher", "resnet999"], "unknown model 'resnet999'", None),
    ("train", WITH_TEACHER + ["--loss", "klx"], "unknown loss 'klx'", None),
    ("train", WITH_TEACHER + ["--tau", "-1"], "tau must be", None),
    ("train", WITH_TEACHER + ["--alpha", "2"], "alpha must be", None),
    ("train", WITH_TEACHER + ["--loss-option", "nope=1"], "has no hyperparameter nope", None),
    ("train", STUDENT + ["--loss", "kl"], "needs a teacher", None),
    ("train", STUDENT + ["--recipe", "nope"], "unknown recipe 'nope'", None),
    ("train", STUDENT + ["--epochs", "0"], "epochs must be >= 1", None),
    ("train", STUDENT + ["--epochs", "-3"], "epochs must be >= 1", None),
    ("train", STUDENT + ["--lr", "inf"], "lr must be a finite number", None),
    ("train", STUDENT + ["--lr", "nan"], "lr must be a finite number", None),
    ("train", STUDENT + ["--lr", "-0.1"], "lr must be > 0", None),
    ("train", STUDENT + ["--batch-size", "0"], "batch_size must be >= 1", None),
    ("train", STUDENT + ["--warmup", "-1"], "warmup_epochs must be >= 0", None),
    ("train", STUDENT + ["--kd-weight", "-1"], "kd_weight must be >= 0", None),
    ("train", STUDENT + ["--label-noise", "symmetric", "--noise-rate", "1.5"], "rate must be in [0, 1)", None),
    ("train", STUDENT + ["--noise-rate", "0.3"], "kind 'none' takes rate 0", None),
    ("train", STUDENT + ["--dataset-option", "num_train=abc"], "option num_train must be an integer", None),
    ("train", STUDENT + ["--dataset-option", "num_train"], "takes key=value", None),
    ("train", STUDENT + ["--dataset-option", "num_classes=1"], "num_classes >= 2", None),
    ("train", STUDENT + ["--dataset-option", "bogus=1"], "has no hyperparameter bogus", None),
    ("train", ["--dataset", "cifar1000", "--model", "resnet8"], "unknown dataset 'cifar1000'", None),
    ("train", ["--dataset", "cifar100", "--data-root", "/nonexistent/data", "--model", "resnet8"],
     "/nonexistent/data", None),
    ("train", STUDENT + ["--device", "bogus"], "unknown device 'bogus'", None),
    ("train", STUDENT + ["--resume", "--force"], "--resume continues a run and --force wipes it", None),
    ("train", STUDENT + ["--resume"], "no unfinished run", None),
    ("train", STUDENT + ["--experiment", "../../x"], "experiment must be a plain name", None),
    ("train", STUDENT + ["--experiment", "a/b"], "experiment must be a plain name", None),
    ("train", STUDENT + ["--teacher-run", "no-such-run"], "no teacher run 'no-such-run'", None),
    ("train", STUDENT + ["--teacher", "cnn1d_teacher", "mlp1d", "--teacher-seed", "1", "2", "3"],
     "--teacher-seed takes one seed", None),
    ("train", STUDENT + ["--ensemble", "median"], "invalid choice: 'median'", None),
    ("train", STUDENT + ["--compile", "bogus"], "invalid choice: 'bogus'", None),
    ("train", STUDENT + ["--bogus"], "unrecognized arguments: --bogus", None),
    ("train", STUDENT + ["--log-every", "0"], "--log-every must be >= 1", None),
    ("train", BASE, "required: --model", None),
    ("train", STUDENT + ["--teacher-run", "{teacher}"], "fails its checksum", corrupt_model),
    ("train", STUDENT + ["--teacher-run", "{teacher}"], "corrupt", corrupt_summary),
    ("train", five_classes(STUDENT) + ["--teacher-run", "{teacher}"], "4-class", None),
    ("train", STUDENT + ["--teacher-run", "{teacher}", "--label-noise", "symmetric", "--noise-rate", "0.2",
                         "--noise-seed", "3"], "label corruption", "noisy teacher"),
    ("store", ["bogus"], "invalid choice: 'bogus'", None),
    ("store", ["train"], "train and ship take one RUN_ID", None),
    ("store", ["ship"], "train and ship take one RUN_ID", None),
    ("store", ["list", "extra"], "the other commands take none", None),
    ("store", ["train", "no-such-run"], "no run 'no-such-run'", None),
    ("store", ["list", "--root", "/nonexistent/results"], "no run store at /nonexistent/results", None),
    ("store", ["train", "{teacher}", "--force", "--device", "bogus"], "unknown device 'bogus'", None),
    ("sweep", "unknown model", "unknown model 'resnet999'", None),
    ("sweep", "missing teacher", "no teacher run 'no-such-run'", None),
    ("sweep", "infinite lr", "lr must be a finite number", None),
    ("sweep", "missing data", "/nonexistent/data", None),
    ("sweep", "jobs 0", "jobs must be >= 1", None),
    ("sweep", "bad device", "unknown device 'bogus'", None),
]


def sweep_input(name: str, t):
    """(configs, run_parallel keywords) of a bad sweep input."""
    good = teacher_config("synthetic", "cnn1d_teacher", dataset_options=DATA)
    if name == "unknown model":
        return [dataclasses.replace(good, model="resnet999")], {}
    if name == "missing teacher":
        return [student(["no-such-run"])], {}
    if name == "infinite lr":
        return [dataclasses.replace(good, recipe={**good.recipe, "lr": float("inf")})], {}
    if name == "missing data":
        return [teacher_config("cifar100", "resnet8")], {"data_root": "/nonexistent/data"}
    if name == "jobs 0":
        return [good], {"jobs": 0}
    return [good], {"device": "bogus"}


def one_line_error(text: str) -> str:
    assert text.count("\n") == 1 and text.endswith("\n"), repr(text)
    assert text.startswith("error: "), text
    return text


@pytest.mark.parametrize("entry, argv, message, setup", BAD,
                         ids=[f"{e}-{i}" for i, (e, *_rest) in enumerate(BAD)])
def test_bad_input_is_one_line_nonzero_and_writes_nothing(results, capsys, entry, argv, message, setup):
    t = None
    if setup is not None or "{teacher}" in str(argv):
        noise = LabelNoise("symmetric", 0.2, 0) if setup == "noisy teacher" else None
        t = teacher(label_noise=noise)
        if callable(setup):
            setup(t)
    before = files(results)
    if entry == "sweep":
        configs, kw = sweep_input(argv, t)
        try:
            (result,) = run_parallel(configs, **{"jobs": 1, **kw}, log=lambda *a: None)
            assert result["status"] == "failed" and "\n" not in result["error"] and "traceback" not in result
            assert message in result["error"], result["error"]
        except UserError as e:
            assert "\n" not in str(e) and message in str(e)
    else:
        argv = [a.replace("{teacher}", t.config.run_id) if t else a for a in argv]
        with pytest.raises(SystemExit) as exc:
            (train_cli if entry == "train" else store_cli)(argv)
        assert exc.value.code == 2
        err = one_line_error(capsys.readouterr().err)
        assert message in err, err
    assert files(results) == before


def run_module(module, argv, env=None, **kw):
    return subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, capture_output=True, text=True,
                          env=os.environ | {"OMP_NUM_THREADS": "1"} | (env or {}), timeout=120, **kw)


@pytest.mark.parametrize("module, argv, message", [
    ("reproduce.train", BASE + ["--model", "cnn2d_student"], "does not fit"),      # was a 51-line traceback
    ("reproduce.store", ["train", "no-such-run"], "no run 'no-such-run'"),
])
def test_bad_input_in_a_real_process_is_exactly_one_stderr_line(results, module, argv, message):
    proc = run_module(module, argv)
    assert proc.returncode == 2
    assert message in one_line_error(proc.stderr)
    assert files(results) == set()


def test_a_sweep_workers_error_is_one_line_without_traceback(tmp_path):
    result = _train_in_worker([teacher_config("cifar100", "resnet8")],
                              {"device": "cpu", "quiet": True, "data_root": str(tmp_path / "nothing")})
    assert result["status"] == "failed" and "traceback" not in result
    assert "\n" not in result["error"] and str(tmp_path / "nothing") in result["error"]


# ------------------------------------------------------------------ locks and races
def test_a_run_held_by_another_process_is_refused_in_one_line_or_waited_for(capsys):
    cfg = teacher_config("synthetic", "cnn1d_teacher", dataset_options=DATA)
    lock = RunLock(RunDir(cfg).path)
    lock.acquire()                                    # "another process": another lock on the file
    try:
        with pytest.raises(UserError, match=rf"being trained by pid {os.getpid()} on .* since"):
            train(cfg, quiet=True, wait=False)
        assert not RunDir(cfg).config_file.exists()   # refused before writing anything
        waiter = threading.Thread(target=train, args=(cfg,), kwargs={"wait": True})
        waiter.start()
        deadline = time.time() + 30
        while "waiting for run" not in capsys.readouterr().out and time.time() < deadline:
            time.sleep(0.05)
        assert waiter.is_alive() and not RunDir(cfg).started
    finally:
        lock.release()
    waiter.join(60)
    assert [r["epoch"] for r in RunDir(cfg).metrics()] == [1, 2] and RunDir(cfg).finished


def test_two_processes_sharing_a_missing_teacher_train_it_once(results):
    """Both wait on the teacher's lock (held here first, so they surely meet), then race for it."""
    argv = [a for a in WITH_TEACHER if a != "--quiet"] + ["--epochs", "3", "--wait"]
    tcfg = teacher_config("synthetic", "cnn1d_teacher", dataset_options=DATA)
    lock = RunLock(RunDir(tcfg).path)
    lock.acquire()
    env = {"PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "reproduce.train", *argv, *extra], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=os.environ | {"OMP_NUM_THREADS": "1"} | env)
             for extra in ([], ["--tau", "2"])]
    try:
        for p in procs:                              # each prints that it waits for the teacher
            for line in p.stdout:
                if "waiting for run" in line:
                    break
    finally:
        lock.release()
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    t = RunDir(tcfg)
    assert [r["epoch"] for r in t.metrics()] == [1, 2]
    assert len((t.path / "log.txt").read_text().splitlines()) == 2          # trained once, not twice
    printed = "".join(out for out, _ in outs)
    assert printed.count("[cnn1d_teacher-ce-s0] epoch") == 2 and "resuming" not in printed   # nor finished twice
    students = [p for p in (results / "runs").iterdir() if p.name.startswith("cnn1d_student")]
    assert len(students) == 2
    for path in students:
        assert [json.loads(line)["epoch"] for line in (path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


# ------------------------------------------------------------------ lost and torn log lines
def straight_rows(cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(tmp_path / "straight"))
    rows = train(cfg, quiet=True).metrics()
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(tmp_path / "results"))
    return comparable(rows)


def lose_last_row(rd):
    lines = rd.metrics_file.read_text().splitlines(keepends=True)
    rd.metrics_file.write_text("".join(lines[:-1]))


def tear_a_next_row(rd):
    with open(rd.metrics_file, "a") as f:
        f.write('{"epoch": 3, "lr": 0.00')


def log_a_row_without_its_checkpoint(rd):
    with open(rd.metrics_file, "a") as f:
        f.write(json.dumps({**rd.metrics()[-1], "epoch": 3}) + "\n")


@pytest.mark.parametrize("damage", [tear_a_next_row, log_a_row_without_its_checkpoint])
def test_resume_drops_rows_the_checkpoint_does_not_hold(tmp_path, monkeypatch, capsys, damage):
    cfg = make_config("reliability", "synthetic", "cnn1d_student", dataset_options=DATA, model_options={"length": 24},
                      recipe_overrides={"epochs": 4})
    expected = straight_rows(cfg, tmp_path, monkeypatch)
    rd = interrupted(cfg, monkeypatch, after=2)
    damage(rd)
    train(cfg)
    assert f"resuming from epoch 2/4: {rd.path}" in capsys.readouterr().out
    assert comparable(rd.metrics()) == expected and rd.summary()["epochs"] == 4


def test_rows_logged_before_a_first_checkpoint_are_not_kept_twice(tmp_path, monkeypatch):
    cfg = make_config("reliability", "synthetic", "cnn1d_student", dataset_options=DATA, model_options={"length": 24})
    expected = straight_rows(cfg, tmp_path, monkeypatch)
    rd = interrupted(cfg, monkeypatch, after=1)
    rd.checkpoint_file.unlink()                       # killed between the first log row and its checkpoint
    train(cfg, quiet=True)
    assert comparable(rd.metrics()) == expected


def test_lost_rows_are_refused_in_one_line_and_the_named_command_fixes_it(tmp_path, monkeypatch, capsys):
    argv = STUDENT + ["--epochs", "4"]
    cfg = make_config("single", "synthetic", "cnn1d_student", dataset_options=DATA, model_options={"length": 24},
                      recipe_overrides={"epochs": 4})
    expected = straight_rows(cfg, tmp_path, monkeypatch)
    rd = interrupted(cfg, monkeypatch, after=3)
    lose_last_row(rd)
    with pytest.raises(SystemExit):
        train_cli(argv)
    err = one_line_error(capsys.readouterr().err)
    assert str(rd.metrics_file) in err and "epochs [1, 2] but the checkpoint is at epoch 3" in err
    command = re.search(r"python -m reproduce\.store (.*)$", err.strip()).group(1).split()
    store_cli(command)
    assert comparable(rd.metrics()) == expected and rd.summary()["epochs"] == 4


def test_a_garbled_row_inside_the_log_is_named(monkeypatch):
    cfg = make_config("reliability", "synthetic", "cnn1d_student", dataset_options=DATA, model_options={"length": 24},
                      recipe_overrides={"epochs": 3})
    rd = interrupted(cfg, monkeypatch, after=2)
    rows = rd.metrics_file.read_text().splitlines()
    rd.metrics_file.write_text("garbage\n" + rows[1] + "\n")
    with pytest.raises(UserError, match=rf"corrupt {re.escape(str(rd.metrics_file))}: line 1 .*store train"):
        train(cfg, quiet=True)


# ------------------------------------------------------------------ corrupt files and their fixes
def fix_command(err: str) -> list[str]:
    return re.search(r"python -m reproduce\.store (\S+ \S+(?: --force)?)", err).group(1).split()


@pytest.mark.parametrize("damage", [corrupt_summary, corrupt_model])
def test_a_corrupt_teacher_is_named_with_a_command_that_retrains_it(capsys, damage):
    argv = WITH_TEACHER + ["--epochs", "1"]
    train_cli(argv)
    t = RunDir(teacher_config("synthetic", "cnn1d_teacher", dataset_options=DATA))
    damage(t)
    with pytest.raises(SystemExit):
        train_cli(argv + ["--force"])
    err = one_line_error(capsys.readouterr().err)
    assert str(t.path) in err
    store_cli(fix_command(err))
    t.verify()
    assert train_cli(argv + ["--force"]).finished


def test_a_corrupt_model_of_a_finished_run_is_noticed_and_fixed(capsys):
    rd = train_cli(STUDENT)
    corrupt_model(rd)
    with pytest.raises(SystemExit):
        train_cli(STUDENT)
    err = one_line_error(capsys.readouterr().err)
    assert f"{rd.model_file} fails its checksum" in err
    store_cli(fix_command(err))
    capsys.readouterr()
    train_cli(STUDENT)
    assert "already finished" in capsys.readouterr().out


def test_a_flipped_byte_in_a_checkpoint_is_caught_by_its_checksum(monkeypatch):
    cfg = make_config("reliability", "synthetic", "cnn1d_student", dataset_options=DATA, model_options={"length": 24},
                      recipe_overrides={"epochs": 3})
    rd = interrupted(cfg, monkeypatch, after=2)
    data = bytearray(rd.checkpoint_file.read_bytes())
    data[len(data) // 2] ^= 0xFF                      # still loads with torch.load: only the digest knows
    rd.checkpoint_file.write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupt checkpoint .*fails its checksum.*store train .* --force"):
        train(cfg, quiet=True)


def test_store_verify_lists_damaged_runs(capsys):
    good = teacher()
    bad = teacher(seed=1)
    corrupt_model(bad)
    with pytest.raises(SystemExit) as exc:
        store_cli(["verify"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and bad.config.run_id in err[0] and good.config.run_id not in err[0]


# ------------------------------------------------------------------ divergence in a group
def test_a_diverging_student_stops_alone_and_its_group_finishes():
    t = teacher()
    healthy = [student([t.config.run_id], loss_hparams={"tau": tau}) for tau in (1.0, 4.0)]
    wild = student([t.config.run_id], loss_hparams={"tau": 2.0}, recipe_overrides={"lr": 1e12})   # NaN in epoch 1
    with pytest.raises(TrainingDiverged, match=rf"run {wild.run_id} diverged: .* epoch 1, .*no checkpoint exists"):
        train_group([*healthy, wild], quiet=True)
    assert all(RunDir(c).finished for c in healthy)
    rd = RunDir(wild)
    failed = json.loads(rd.failed_file.read_text())
    assert set(failed) == {"reason", "epoch", "time"} and failed["epoch"] == 1 and "diverged" in failed["reason"]
    assert rd.status() == "failed" and not rd.started and not rd.metrics()
    # a rerun skips the finished runs and retries the failed one (clearing failed.json first)
    stamps = [RunDir(c).summary_file.stat().st_mtime_ns for c in healthy]
    with pytest.raises(TrainingDiverged):
        train_group([*healthy, wild], quiet=True)
    assert [RunDir(c).summary_file.stat().st_mtime_ns for c in healthy] == stamps
    assert json.loads(rd.failed_file.read_text())["time"] >= failed["time"]


def test_the_cli_reports_a_divergence_in_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        train_cli(STUDENT + ["--lr", "1e12"])
    assert exc.value.code == 2
    assert "diverged" in one_line_error(capsys.readouterr().err)


# ------------------------------------------------------------------ a kill inside a checkpoint write
KILL_IN_SECOND_CHECKPOINT = """
import json, os, signal, sys, tempfile
import engine.rundir as rundir
from engine import RunConfig, train

real, seen = rundir.atomic_write_bytes, []

def dying(path, data):
    if path.name == "checkpoint.pt":
        seen.append(path)
        if len(seen) == 2:            # half of the second checkpoint is on disk, then SIGKILL
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{rundir.TEMP_MARK}")
            os.write(fd, data[: len(data) // 2])
            os.fsync(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    real(path, data)

rundir.atomic_write_bytes = dying
train(RunConfig.from_dict(json.loads(sys.argv[1])), quiet=True)
"""


@pytest.fixture
def one_thread():
    """As in the killed process (OMP_NUM_THREADS=1): float results do not depend on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_kill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch, one_thread):
    cfg = make_config("reliability", "synthetic", "cnn1d_student", dataset_options=DATA, model_options={"length": 24},
                      recipe_overrides={"epochs": 3})
    expected = straight_rows(cfg, tmp_path, monkeypatch)
    from engine.config import _jsonable

    proc = subprocess.Popen([sys.executable, "-c", KILL_IN_SECOND_CHECKPOINT, json.dumps(_jsonable(cfg.to_dict()))],
                            cwd=ROOT, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert proc.wait(timeout=120) == -signal.SIGKILL
    rd = RunDir(cfg)
    assert json.loads((rd.path / ".lock.json").read_text())["pid"] == proc.pid    # it held the lock when killed
    lock = RunLock(rd.path)
    lock.acquire(wait=False)                          # no stale lock: the kernel freed the dead holder's flock
    lock.release()
    assert list(rd.path.glob(".checkpoint.pt.tmp.*"))                 # the half-written one
    assert rd.load_checkpoint()["epoch"] == 1                         # the previous one loads and checks
    assert len(rd.metrics()) == 2                                     # epoch 2 was logged before its checkpoint
    train(cfg, quiet=True)
    assert comparable(rd.metrics()) == expected
    assert not list(rd.path.glob(".*.tmp.*"))
