"""Reliability of the entry points beyond reproduce.train (docs/runs.md, "What each entry point
promises"): the sweep, the paper scripts, reproduce.papers, reproduce.store, reproduce.demo,
python -m analysis and the make targets. A table of bad inputs (each one line, non-zero, nothing
written), and the faults: a worker killed, SIGTERM / SIGHUP / a killed driver with --jobs 2, a
full or read-only disk (on a small tmpfs where the machine allows mounting one), a kill while a
figure is drawn, torn files that `store verify` names, two unfinished copies for `store
migrate`, the numbers files, the permissions of written files. Smoke scale: seconds each."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from common import UserError
from engine import RunDir, make_config, teacher_config, train
from engine.config import _jsonable
from engine.sweep import save_configs
from run_helpers import interrupted

ROOT = Path(__file__).resolve().parents[1]
DATA = {"num_train": 192, "num_test": 96, "num_classes": 4, "shape": [1, 24]}
SMOKE = ["--profile", "smoke"]

pytestmark = pytest.mark.usefixtures("results")    # conftest: a temporary results/data folder


def teacher(seed=0, epochs=None):
    return teacher_config("synthetic", "cnn1d_teacher", dataset_options=DATA, seed=seed,
                          recipe_overrides={"epochs": epochs} if epochs else None)


def files(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")} if root.is_dir() else set()


def one_line_error(text: str) -> str:
    assert text.count("\n") == 1 and text.endswith("\n"), repr(text)
    assert text.startswith("error: "), text
    return text


# ------------------------------------------------------------------ the table of bad inputs
def entry(name):
    """The in-process main of an entry point."""
    if name == "sweep":
        from reproduce.sweep import main
    elif name == "paper":
        from reproduce.kl_vs_mse import main
    elif name == "papers":
        from reproduce.papers import main
    elif name == "store":
        from reproduce.store import main
    elif name == "demo":
        from reproduce.demo import main
    else:
        from analysis.__main__ import main
    return main


def inputs(tmp: Path) -> dict:
    """Files the bad inputs name, outside the results folder: {placeholder: path}."""
    good = save_configs([teacher()], tmp / "good.json")
    entries = {"object": {"a": 1}, "empty": [], "number": [1], "unknown": [{**_dict(teacher()), "bogus": 1}],
               "type": [{**_dict(teacher()), "seed": "0"}], "teachers": [{**_dict(teacher()), "teachers": "x"}],
               "recipe": [{**_dict(teacher()), "recipe": {**teacher().recipe, "epochs": "two"}}],
               "missing": [{k: v for k, v in _dict(teacher()).items() if k != "model"}]}
    out = {"good": good, "notjson": tmp / "notjson.json", "folder": tmp / "folder", "file": tmp / "a-file",
           "nomanifest": tmp / "nomanifest", "torn": tmp / "torn", "shape": tmp / "shape"}
    for name, data in entries.items():
        out[name] = tmp / f"{name}.json"
        out[name].write_text(json.dumps(data))
    out["notjson"].write_text('[{"experiment": "x", "data')
    out["folder"].mkdir()
    out["file"].write_text("not a folder\n")
    out["nomanifest"].mkdir()
    for name, text in (("torn", '{"paper": "kl_vs_mse", "type": "ta'), ("shape", "[1, 2]")):
        (out[name] / "manifest").mkdir(parents=True)
        (out[name] / "manifest" / "t.table.json").write_text(text)
    return out


def _dict(c):
    return _jsonable(c.to_dict())


# (entry point, argv, the message's part, environment). {name}: a path of `inputs`.
BAD = [
    ("sweep", ["{tmp}/absent.json"], "no sweep config file", None),
    ("sweep", ["{folder}"], "(a folder)", None),
    ("sweep", ["{notjson}"], "is not JSON", None),
    ("sweep", ["{object}"], "holds a JSON object, not a list", None),
    ("sweep", ["{empty}"], "holds an empty list", None),
    ("sweep", ["{number}"], "entry 0: a run config is a JSON object", None),
    ("sweep", ["{unknown}"], "unknown key(s) bogus", None),
    ("sweep", ["{missing}"], "missing key(s) model", None),
    ("sweep", ["{type}"], "seed must be a JSON integer, got '0'", None),
    ("sweep", ["{teachers}"], "teachers must be a JSON list", None),
    ("sweep", ["{recipe}"], "epochs must be an integer", None),
    ("sweep", ["{good}", "--jobs", "100000"], "--jobs 100000 is more than", None),
    ("sweep", ["{good}", "--jobs", "0"], "--jobs must be >= 1", None),
    ("sweep", ["{good}", "--jobs", "two"], "argument --jobs", None),
    ("sweep", ["{good}", "--threads", "0"], "--threads must be >= 1", None),
    ("sweep", ["{good}", "--status", "--dry-run"], "give one of them", None),
    ("sweep", ["{good}", "--status", "--jobs", "2"], "--jobs does not apply: --status reads the run store", None),
    ("sweep", ["{good}", "--dry-run", "--launcher", "slurm", "--executor", "local"], "does not apply", None),
    ("sweep", ["{good}"], "LOGIT_KD_THREADS must be a whole number", {"LOGIT_KD_THREADS": "two"}),
    ("sweep", ["{good}"], "LOGIT_KD_THREADS must be a whole number", {"LOGIT_KD_THREADS": "0"}),
    ("sweep", ["{good}"], "is a file, not a folder", {"LOGIT_KD_RESULTS": "{file}"}),
    ("sweep", ["{good}", "--status", "--threads", "2"], "--threads does not apply", {"LOGIT_KD_THREADS": ""}),
    ("sweep", ["{good}"], "is a file, not a folder", {"LOGIT_KD_RESULTS": "{file}/results"}),
    ("paper", ["all", *SMOKE, "--status", "--dry-run"], "give one of them", None),
    ("paper", ["all", *SMOKE, "--status", "--jobs", "2"], "--jobs does not apply: --status", None),
    ("paper", ["all", *SMOKE, "--status", "--launcher", "slurm", "--executor", "local"], "does not apply", None),
    ("paper", ["analyze", *SMOKE, "--jobs", "2"], "--jobs does not apply: analyze renders", None),
    ("paper", ["analyze", *SMOKE, "--device", "cpu", "--quiet"], "--quiet, --device do not apply", None),
    ("paper", ["all", "--profile", "bogus"], "invalid choice: 'bogus'", None),
    ("paper", ["bogus", *SMOKE], "invalid choice: 'bogus'", None),
    ("paper", ["all", *SMOKE, "--seeds", "0", "0"], "--seeds 0 0: give distinct seeds", None),
    ("paper", ["all", *SMOKE, "--seeds", "-1"], "give distinct seeds >= 0", None),
    ("paper", ["all", *SMOKE, "--jobs", "100000"], "--jobs 100000 is more than", None),
    ("paper", ["all", *SMOKE, "--jobs", "0"], "--jobs must be >= 1", None),
    ("paper", ["all", *SMOKE, "--quiet"], "is a file, not a folder", {"LOGIT_KD_RESULTS": "{file}"}),
    ("paper", ["all", *SMOKE, "--quiet"], "LOGIT_KD_THREADS must be", {"LOGIT_KD_THREADS": "1.5"}),
    ("papers", ["teachers", "--profile", "bogus"], "unknown profile 'bogus' for --profile", None),
    ("papers", ["teachers", "--profile", "bogus", "--dry-run"], "unknown profile 'bogus' for --profile", None),
    ("papers", ["mini", "--profile", "smoke"], "--profile does not apply: mini runs", None),
    ("papers", ["list", "--jobs", "2"], "--jobs does not apply: list", None),
    ("papers", ["help", "--dry-run"], "--dry-run does not apply: help", None),
    ("papers", ["analyze", "--jobs", "2"], "--jobs does not apply: analyze", None),
    ("papers", ["teachers", "--jobs", "100000"], "--jobs 100000 is more than", None),
    ("store", ["list", "--force"], "--force does not apply: list trains nothing", None),
    ("store", ["verify", "--wait"], "--wait does not apply", None),
    ("store", ["verify", "--root", "{file}"], "--root", None),
    ("store", ["migrate", "--root", "{file}"], "is a file, not a folder", None),
    ("store", ["migrate"], "is a file, not a folder", {"LOGIT_KD_RESULTS": "{file}"}),
    ("demo", ["--jobs", "100000"], "--jobs 100000 is more than", None),
    ("demo", ["--profile", "bogus", "--dry-run"], "has no profile 'bogus' (--profile", None),
    ("analysis", ["{tmp}/absent"], "is not a folder", None),
    ("analysis", ["{file}"], "is not a folder", None),
    ("analysis", ["{nomanifest}"], "has no manifest/*.json", None),
    ("analysis", ["{torn}"], "corrupt manifest", None),
    ("analysis", ["{shape}"], "not a manifest", None),
    ("analysis", [], "the following arguments are required", None),
]


@pytest.mark.parametrize("name, argv, message, env", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_is_one_line_nonzero_and_writes_nothing(results, tmp_path, monkeypatch, capsys,
                                                          name, argv, message, env):
    paths = {k: str(v) for k, v in inputs(tmp_path).items()} | {"tmp": str(tmp_path)}
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value.format(**paths))
    before = files(results)
    with pytest.raises(SystemExit) as exc:
        entry(name)([a.format(**paths) for a in argv])
    assert exc.value.code == 2
    err = one_line_error(capsys.readouterr().err)
    assert message in err, err
    assert files(results) == before


@pytest.mark.parametrize("argv, message", [
    (["mini", "PROFILE=smoke"], "PROFILE=smoke does not apply to make mini"),
    (["test", "PROFILE=smoke"], "PROFILE=smoke does not apply to make test"),
    (["demo", "SEEDS=0 1"], "SEEDS=0 1 does not apply to make demo"),
    (["clean-runs", "ARGS=--force"], "ARGS=--force does not apply to make clean-runs"),
])
def test_make_refuses_a_variable_its_target_does_not_take(results, argv, message):
    """Refused when the Makefile is read, before `setup` or anything else runs."""
    proc = subprocess.run(["make", "--no-print-directory", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert files(results) == set()


def test_make_demo_passes_profile_on():
    proc = subprocess.run(["make", "-n", "--no-print-directory", "demo", "PROFILE=smoke", "ARGS=--dry-run"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "-m reproduce.demo --profile smoke --dry-run" in proc.stdout


def test_a_paper_scripts_status_exits_1_while_groups_are_queued(capsys):
    from reproduce.kl_vs_mse import main

    with pytest.raises(SystemExit) as exc:
        main(["sequential", *SMOKE, "--status"])
    assert exc.value.code == 1
    out = capsys.readouterr().out
    assert "queued" in out and "0 done" in out


def test_a_bad_input_in_a_real_process_is_one_line(results):
    proc = run_module("reproduce.sweep", [str(ROOT / "no-such-configs.json")])
    assert proc.returncode == 2 and "no sweep config file" in one_line_error(proc.stderr)
    proc = run_module("analysis", [str(ROOT / "no-such-folder")])
    assert proc.returncode == 2 and "is not a folder" in one_line_error(proc.stderr)


# ------------------------------------------------------------------ the numbers files
NUMBERS = [
    ("key,value,source,verified\na,1.5,s,yes\na,2.5,s,yes\n", "line 3: key 'a' is repeated (line 2 has it)"),
    ("key,value,source,verified\n,1.5,s,yes\n", "line 2: empty key"),
    ("key,value,source,verified\na,n/a,s,yes\n", "key 'a' has value 'n/a', not a number"),
    ("key,value,source,verified\na,,s,yes\n", "key 'a' has value '', not a number"),
    ("key,value,source,verified\na,1.5,s,maybe\n", "write yes or no"),
    ("key,number\na,1.5\n", "must have the columns key,value,source,verified"),
]


@pytest.mark.parametrize("text, message", NUMBERS)
def test_a_bad_numbers_file_is_one_line_naming_its_line(tmp_path, text, message):
    from reproduce.runner import load_numbers

    path = tmp_path / "paper.csv"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        load_numbers("paper", path)
    assert "\n" not in str(e.value) and str(path) in str(e.value) and message in str(e.value)


@pytest.mark.parametrize("text, message", [
    (NUMBERS[0][0], "is repeated"),
    ("key,value,source,verified\n", "no paper number"),       # a key the paper's tables quote is missing
])
def test_a_paper_script_refuses_a_bad_numbers_file_before_anything_runs(results, tmp_path, monkeypatch, capsys,
                                                                        text, message):
    """Even its dry run: a wrong paper number would otherwise surface after the training."""
    import reproduce.runner as runner
    from reproduce.kl_vs_mse import main

    (tmp_path / "kl_vs_mse.csv").write_text(text)
    monkeypatch.setattr(runner, "numbers_file", lambda paper: tmp_path / f"{paper}.csv")
    for argv in (["all", *SMOKE, "--dry-run"], ["all", *SMOKE, "--quiet"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and message in one_line_error(capsys.readouterr().err)
    assert files(results) == set()


# ------------------------------------------------------------------ processes and signals
def run_module(module, argv, env=None, **kw):
    return subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, capture_output=True, text=True,
                          env=os.environ | {"OMP_NUM_THREADS": "1"} | (env or {}), timeout=300, **kw)


def start(module, argv) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, *argv], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=os.environ | {"OMP_NUM_THREADS": "1"})


def children() -> dict:
    """pid -> parent pid of every process, from /proc."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        out[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])
    return out


def descendants(pid: int) -> set:
    parents = children()
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, parent in parents.items() if parent == p}
        todo += list(kids - found)
        found |= kids
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def worker_holding(run: RunDir, driver: subprocess.Popen, timeout: float = 120) -> int:
    """The pid of the worker process that holds `run`'s lock (its .lock.json), once it does."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert driver.poll() is None, driver.communicate()
        try:
            pid = json.loads((run.path / ".lock.json").read_text())["pid"]
            if pid != driver.pid:
                return pid
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no worker took {run.path}")


def gone(pids, timeout: float = 20) -> bool:
    deadline = time.time() + timeout
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    return not any(alive(p) for p in pids)


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")


@pytest.mark.slow
@needs_proc
def test_a_killed_worker_fails_only_its_own_group(results, tmp_path):
    """kill -9 of the worker training group A (as the out-of-memory killer would): A fails in one
    line with failed.json; B, running beside it, and C, queued behind them, finish; the summary
    names the command that resumes A."""
    slow, quick, queued = teacher(0, epochs=600), teacher(1), teacher(2)
    path = save_configs([slow, quick, queued], tmp_path / "sweep.json")
    driver = start("reproduce.sweep", [str(path), "--jobs", "2"])
    victim = worker_holding(RunDir(slow), driver)
    while not RunDir(slow).started:                   # killed after its first checkpoint: it can resume
        time.sleep(0.05)
    os.kill(victim, signal.SIGKILL)
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 1, err
    assert RunDir(quick).finished and RunDir(queued).finished and not RunDir(slow).finished
    reason = json.loads(RunDir(slow).failed_file.read_text())["reason"]
    assert f"its worker (pid {victim}) was killed by SIGKILL" in reason
    assert "sweep: 2 ok, 0 done, 1 failed, 0 blocked group(s)" in out
    lines = err.strip().splitlines()
    assert len(lines) == 2 and slow.run_id in lines[0] and "killed by SIGKILL" in lines[0], err
    assert lines[1].endswith(f"resume with: python -m reproduce.sweep {path} --jobs 2")
    RunDir(slow).check_resumable()                    # its last checkpoint loads and matches the log
    from engine.launch import status

    assert [r["status"] for r in status([slow])] == ["failed"]


@pytest.mark.slow
@needs_proc
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGKILL, -9)],
                         ids=["SIGTERM", "SIGHUP", "SIGKILL-of-the-driver"])
def test_a_signal_to_the_sweep_leaves_no_process_and_resumable_runs(results, tmp_path, sig, code):
    """SIGTERM and SIGHUP as Ctrl-C: workers stopped, one line, exit 128 + signal. SIGKILL of the
    driver cannot be handled: its workers follow it (PR_SET_PDEATHSIG on Linux)."""
    runs = [teacher(seed, epochs=600) for seed in (0, 1)]
    driver = start("reproduce.sweep", [str(save_configs(runs, tmp_path / "sweep.json")), "--jobs", "2"])
    for c in runs:
        worker_holding(RunDir(c), driver)
    family = descendants(driver.pid)                  # both workers and the resource tracker
    assert len(family) >= 3
    driver.send_signal(sig)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == code
    if sig != signal.SIGKILL:
        assert err == f"interrupted by {sig.name}: workers stopped, the last end-of-epoch checkpoints are kept; " \
                      "rerun the same command to resume\n"
    assert gone(family), [p for p in family if alive(p)]
    for c in runs:
        rd = RunDir(c)
        assert not rd.finished and not rd.failed_file.exists()    # (absent: stopped before its first file)
        if rd.started:
            rd.check_resumable()


@pytest.mark.slow
@needs_proc
def test_sigterm_to_a_paper_script_with_two_jobs(results):
    """The same through a paper script (engine/sweep.py under reproduce/runner.py); then the same
    command resumes and finishes."""
    argv = ["label-noise", *SMOKE, "--jobs", "2", "--quiet"]
    driver = start("reproduce.kl_vs_mse", argv)
    deadline = time.time() + 120
    while not any(pid != driver.pid for pid in _lock_holders(results)) and time.time() < deadline:
        assert driver.poll() is None, driver.communicate()
        time.sleep(0.02)
    family = descendants(driver.pid)
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 143 and "interrupted by SIGTERM" in one_line(err)
    assert gone(family)
    again = run_module("reproduce.kl_vs_mse", argv)
    assert again.returncode == 0, again.stderr
    assert (results / "kl_vs_mse" / "smoke" / "label_noise.md").exists()


def _lock_holders(results: Path) -> set:
    pids = set()
    for f in (results / "runs").glob("*/.lock.json"):
        try:
            pids.add(json.loads(f.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            pass
    return pids


def one_line(text: str) -> str:
    assert text.count("\n") == 1, repr(text)
    return text


# ------------------------------------------------------------------ full and read-only disks
@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, options) -> a folder on a fresh tmpfs of that size; skipped where mounting is not
    allowed (not root, no CAP_SYS_ADMIN)."""
    mounted = []

    def mount(size: str, options: str = "") -> Path:
        where = tmp_path / f"tmpfs{len(mounted)}"
        where.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def leftovers(root: Path) -> list:
    """Temporary files of interrupted writes, and empty files (none of ours is ever empty but locks)."""
    return [p for p in root.rglob("*") if p.is_file() and (".tmp." in p.name or
                                                           (p.stat().st_size == 0 and not p.name.endswith(".lock")))]


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_same_command_resumes_after_space_is_freed(tmpfs, monkeypatch):
    """On a 1 MiB tmpfs the first checkpoint does not fit: one line naming the file and the fix,
    no torn or empty file; on the same disk made larger, the same command finishes."""
    disk = tmpfs("1m")
    argv = ["teachers", *SMOKE, "--jobs", "1", "--quiet"]
    env = {"LOGIT_KD_RESULTS": str(disk / "results")}
    proc = run_module("reproduce.kl_vs_mse", argv, env)
    assert proc.returncode == 2
    err = one_line_error(proc.stderr)
    assert re.search(rf"cannot write {re.escape(str(disk))}/results/runs/\S+: No space left on device; free space", err)
    assert not leftovers(disk)
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    proc = run_module("reproduce.kl_vs_mse", argv, env)
    assert proc.returncode == 0, proc.stderr
    assert all(RunDir.at(p).finished for p in (disk / "results" / "runs").iterdir())


def test_a_full_disk_in_a_sweep_worker_fails_its_group_in_one_line(tmpfs, tmp_path):
    disk = tmpfs("1m")
    path = save_configs([teacher()], tmp_path / "sweep.json")
    proc = run_module("reproduce.sweep", [str(path), "--jobs", "2"], {"LOGIT_KD_RESULTS": str(disk / "results")})
    assert proc.returncode == 1
    failed, resume = proc.stderr.strip().splitlines()
    assert "No space left on device" in failed and f"{disk}/results/runs/" in failed
    assert resume.endswith(f"resume with: python -m reproduce.sweep {path} --jobs 2")
    assert not leftovers(disk)


@pytest.mark.parametrize("module, argv", [
    ("reproduce.sweep", ["{configs}"]),
    ("reproduce.kl_vs_mse", ["teachers", *SMOKE, "--quiet"]),
    ("reproduce.store", ["migrate"]),
])
def test_a_read_only_results_root_is_one_line_before_anything_trains(tmpfs, tmp_path, module, argv):
    disk = tmpfs("1m", ",ro")
    configs = save_configs([teacher()], tmp_path / "sweep.json")
    proc = run_module(module, [a.format(configs=configs) for a in argv], {"LOGIT_KD_RESULTS": str(disk)})
    assert proc.returncode == 2
    assert f"cannot write in results root {disk}: Read-only file system" in one_line_error(proc.stderr)


# ------------------------------------------------------------------ a kill while rendering
KILL_IN_SAVEFIG = """
import io, os, signal, sys
from matplotlib.figure import Figure

real = Figure.savefig

def dying(self, fname, *args, **kwargs):     # half the PNG written where savefig writes it, then SIGKILL
    buf = io.BytesIO()
    real(self, buf, *args, **{**kwargs, "format": "png"})
    f = open(fname, "wb") if isinstance(fname, (str, os.PathLike)) else fname
    f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

Figure.savefig = dying
from analysis.__main__ import main
main([sys.argv[1]])
"""


def test_a_kill_while_a_figure_is_drawn_leaves_the_previous_figure_or_none(results, tmp_path):
    from analysis.render import render
    from reproduce.kl_vs_mse import EXPERIMENT
    from reproduce.plan import configs_of
    from reproduce.runner import selected, write_manifests

    plan = EXPERIMENT.plan("smoke")
    out = tmp_path / "out"
    write_manifests(plan, selected(plan, "tau-sweep"), out, {c.run_id: c for s in plan.sections for c in configs_of(s)},
                    claims=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # an empty legend: no run is there
        render(out)
    figure = out / "tau_sweep.png"
    before = figure.read_bytes()
    assert before.startswith(b"\x89PNG")
    for previous in (True, False):
        if not previous:
            figure.unlink()
        proc = subprocess.run([sys.executable, "-c", KILL_IN_SAVEFIG, str(out)], cwd=ROOT, capture_output=True,
                              env=os.environ | {"OMP_NUM_THREADS": "1"}, timeout=120)
        assert proc.returncode == -signal.SIGKILL
        assert (figure.read_bytes() == before) if previous else not figure.exists()
        assert all(p.stat().st_size > 0 for p in out.glob("[!.]*") if p.is_file())
    assert all(p.name.startswith(".tau_sweep.png.tmp.") for p in out.glob(".*"))   # at most the half-written one


# ------------------------------------------------------------------ store verify and migrate
def tear_the_last_line(rd):
    with open(rd.metrics_file, "a") as f:
        f.write('{"epoch": 3, "lr": 0.0')


def lose_a_row(rd):
    rd.metrics_file.write_text(rd.metrics_file.read_text().splitlines(keepends=True)[0])


def truncate_outputs(rd):
    path = rd.path / "outputs.pt"
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize("damage, message", [
    (tear_the_last_line, "metrics.jsonl: line 3 of 3 is not JSON"),
    (lose_a_row, "metrics.jsonl holds epochs [1] but the run finished 2 epoch(s)"),
    (truncate_outputs, "outputs.pt"),
])
def test_store_verify_reads_every_file_a_later_step_reads(capsys, damage, message):
    from reproduce.store import main as store

    from analysis.metrics import RunFiles

    good, bad = train(teacher(0), quiet=True), train(teacher(1), quiet=True)
    damage(bad)
    if damage is not lose_a_row:                      # the renderer, too, names the file and its fix
        saved = RunFiles(bad.path)
        with pytest.raises(UserError, match=r"corrupt .*store train \S+ --force"):
            saved.metrics if damage is tear_the_last_line else saved.outputs
    with pytest.raises(SystemExit) as exc:
        store(["verify"])
    assert exc.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert message in line and bad.config.run_id in line and good.config.run_id not in line
    fix = re.search(r"python -m reproduce\.store (train \S+ --force)", line).group(1).split()
    store(fix)
    store(["verify"])                                 # whole again


@pytest.mark.parametrize("fuller", ["a_first", "b_second"])
def test_store_migrate_keeps_the_fuller_of_two_unfinished_copies(results, monkeypatch, capsys, fuller):
    from reproduce.store import migrate

    cfg = make_config("migrate", "synthetic", "cnn1d_student", dataset_options=DATA, model_options={"length": 24},
                      recipe_overrides={"epochs": 4})
    epochs = {"a_first": 3, "b_second": 1} if fuller == "a_first" else {"a_first": 1, "b_second": 3}
    for experiment, after in epochs.items():
        shutil.move(str(interrupted(cfg, monkeypatch, after).path), str(results / experiment / "runs" / cfg.run_id))
    migrate(results, log=lambda *a: None)
    rd = RunDir(cfg)
    assert rd.load_checkpoint()["epoch"] == 3 and len(rd.metrics()) == 3
    assert not list(results.glob("*/runs/*"))       # the other copy is removed
    capsys.readouterr()
    train(cfg)
    assert "resuming from epoch 3/4" in capsys.readouterr().out


# ------------------------------------------------------------------ permissions
@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o002, 0o022])
def test_every_written_file_has_the_users_umask_permissions(results, umask):
    """mkstemp alone would make 0600 files: colleagues on a shared results folder could not read them."""
    proc = subprocess.run([sys.executable, "-m", "reproduce.kl_vs_mse", "sequential", *SMOKE, "--jobs", "1", "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"},
                          timeout=300, preexec_fn=lambda: os.umask(umask))
    assert proc.returncode == 0, proc.stderr
    written = [p for p in results.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in written}
    assert {".json", ".pt", ".md", ".csv", ".jsonl", ".sha256"} <= kinds
    wrong = {str(p.relative_to(results)): oct(p.stat().st_mode & 0o777) for p in written
             if p.stat().st_mode & 0o777 != 0o666 & ~umask}
    assert not wrong
