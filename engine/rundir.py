"""Run directories: the only thing `analysis/` reads. One store for every paper:

results/runs/<run-id>/          (the run id is the config hash; the experiment is only a tag in
                                 config.json, so every script that asks for the same config
                                 finds the same run: teachers, demo, papers, comparison)
  config.json     the resolved RunConfig
  env.json        git commit and dirty flag, seed, torch/torchvision/python versions, device
  metrics.jsonl   one JSON object per finished epoch, flushed as it goes
  summary.json    final summary (written last: its presence marks the run finished)
  checkpoint.pt   last end-of-epoch state, written atomically (temp file + rename)
  checkpoint.sha256  digests of the new and the previous checkpoint (written before it)
  model.pt        final weights (+ model.sha256), for teachers and later analysis
  failed.json     {reason, epoch, time} of a run that diverged (removed when it restarts)
  .lock, .lock.json  the run's lock (flock) and who holds it (host, pid, start time)

What a run promises (locking, resume, NaN, corruption messages): docs/runs.md.
"""
import hashlib
import json
import os
import platform
import subprocess
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from common import UserError
from common.files import TEMP_MARK, atomic_write_bytes, check_writable, with_filename  # noqa: F401  (re-exported)
from engine.config import RunConfig, _jsonable, from_jsonable

RESULTS_ROOT_ENV = "LOGIT_KD_RESULTS"


def results_root() -> Path:
    """Where run directories live: $LOGIT_KD_RESULTS or ./results (relative to the working directory);
    an empty variable counts as unset (else Path("") would put the store in the working directory)."""
    return Path(os.environ.get(RESULTS_ROOT_ENV) or "results")


def check_results_root(root: Path | None = None) -> Path:
    """The results root (runs and tables go there) is a folder this process can write in, checked
    before anything trains: a file, a read-only or a full disk is one line."""
    return check_writable(root or results_root(), "results root",
                          f"set {RESULTS_ROOT_ENV} (or --root) to a folder you can write, with free space")


def torch_bytes(obj) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def atomic_torch_save(obj, path: Path) -> None:
    atomic_write_bytes(path, torch_bytes(obj))


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n").encode())


def semantic(config: RunConfig) -> dict:
    """What a run computes: its config without the tags that do not enter the run id."""
    return from_jsonable(_jsonable(config.semantic_dict()))


def read_json(path: Path):
    """A JSON file of a run; an unreadable one is a UserError naming it."""
    try:
        return from_jsonable(json.loads(Path(path).read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"corrupt {path} ({type(e).__name__}: {e}); {fix_for(Path(path).parent)}") from e


def store_command(run_id: str, force: bool = True) -> str:
    """The command that (re)trains a run from its config.json: works for teachers and students."""
    return f"python -m reproduce.store train {run_id}" + (" --force" if force else "")


def fix_for(run_path: Path, force: bool = True) -> str:
    """How to repair the run directory `run_path`: retrain it from its config, or, without a
    readable config, delete it and rerun the command that asked for it."""
    if (run_path / "config.json").exists() and _json_ok(run_path / "config.json"):
        config = json.loads((run_path / "config.json").read_text())
        if isinstance(config, dict) and config.get("imported"):       # released weights: nothing to train
            from engine.imported import import_command

            return f"import it again: {import_command(config)}"
        return f"retrain it: {store_command(run_path.name, force)}"
    return f"delete {run_path} and rerun the command that planned it"


def _json_ok(path: Path) -> bool:
    try:
        json.loads(path.read_text())
        return True
    except (OSError, ValueError):
        return False


def _span(epochs: list) -> str:
    """[1, 2, ..., 40] as '1..40', anything else as the list."""
    if epochs and epochs == list(range(1, len(epochs) + 1)) and len(epochs) > 3:
        return f"1..{len(epochs)}"
    return str(epochs)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_state() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    commit = git("rev-parse", "HEAD")
    return {"commit": commit or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


def environment(device: str, seed: int) -> dict:
    from importlib.metadata import version     # importing torchvision itself loads every model (seconds)

    return {"seed": seed, "device": device, "torch": torch.__version__, "torchvision": version("torchvision"),
            "python": platform.python_version(), "platform": platform.platform(),
            "threads": torch.get_num_threads(), **git_state()}


STORE = "runs"


def store_root(root: Path | None = None) -> Path:
    """The run store: <results root>/runs/."""
    return (root or results_root()) / STORE


LOCK_FILE, HOLDER_FILE = ".lock", ".lock.json"


class RunLock:
    """The exclusive lock of one run directory, held while a process trains the run.

    flock-based (filelock.FileLock on POSIX): the kernel releases it when the holder dies,
    SIGKILL included, so a stale lock never blocks. Beside it, .lock.json says who holds it
    (host, pid, start time) for the message of a process that finds it taken."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = FileLock(self.path / LOCK_FILE)

    def holder(self) -> str:
        try:
            h = json.loads((self.path / HOLDER_FILE).read_text())
            return f"pid {h['pid']} on {h['host']} since {h['started']}"
        except (OSError, ValueError, KeyError):
            return "another process"

    def acquire(self, wait: bool = True, say=print) -> None:
        """Take the lock; if another process holds it, wait for it (saying so) or raise UserError."""
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            if not wait:
                raise UserError(f"run {self.path.name} is being trained by {self.holder()} ({self.path}); "
                                "wait for it to end, or rerun with --wait") from None
            say(f"waiting for run {self.path.name}: {self.holder()} holds it", flush=True)
            self._lock.acquire()
        atomic_write_bytes(self.path / HOLDER_FILE, json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(),
             "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())

    def release(self) -> None:
        (self.path / HOLDER_FILE).unlink(missing_ok=True)
        self._lock.release()

    def held_by(self) -> str | None:
        """Who holds the lock now, or None when it is free (taken and released at once)."""
        if not (self.path / LOCK_FILE).exists():
            return None
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return self.holder()
        self._lock.release()
        return None


@contextmanager
def hold(paths, wait: bool = True, say=print):
    """Lock several run directories (in a fixed order, so two groups never deadlock); all or none."""
    locks = []
    try:
        for path in sorted(set(map(Path, paths))):
            lock = RunLock(path)
            lock.acquire(wait, say)
            locks.append(lock)
        yield
    finally:
        for lock in reversed(locks):
            lock.release()


class RunDir:
    def __init__(self, config: RunConfig, root: Path | None = None):
        self.config = config
        self.path = store_root(root) / config.run_id
        self._checkpoint_digest = None    # digest of the checkpoint on disk, as this process knows it

    @staticmethod
    def at(path: Path) -> "RunDir":
        """The run directory at `path`, from its config.json."""
        rd = RunDir(RunConfig.from_dict(read_json(Path(path) / "config.json")))
        rd.path = Path(path)
        return rd

    config_file = property(lambda self: self.path / "config.json")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    summary_file = property(lambda self: self.path / "summary.json")
    checkpoint_file = property(lambda self: self.path / "checkpoint.pt")
    checkpoint_sums = property(lambda self: self.path / "checkpoint.sha256")
    model_file = property(lambda self: self.path / "model.pt")
    failed_file = property(lambda self: self.path / "failed.json")

    @property
    def finished(self) -> bool:
        return self.summary_file.exists()

    def status(self) -> str:
        """From the files alone: done (summary), failed (failed.json), started (a checkpoint),
        created (config only) or absent."""
        if self.finished:
            return "done"
        if self.failed_file.exists():
            return "failed"
        if self.started:
            return "started"
        return "created" if self.config_file.exists() else "absent"

    @property
    def started(self) -> bool:
        return self.checkpoint_file.exists()

    def create(self, device: str, force: bool = False) -> None:
        """Start fresh (force) or check that an existing directory belongs to the same config.
        Called under the run's lock (engine.trainer.train_group)."""
        if force and self.path.exists():
            self._wipe()
        self.path.mkdir(parents=True, exist_ok=True)
        if self.config_file.exists():
            on_disk = RunConfig.from_dict(read_json(self.config_file))
            if on_disk.run_id != self.config.run_id or semantic(on_disk) != semantic(self.config):
                raise UserError(f"{self.config_file} holds a different config; "
                                f"delete {self.path} to redo the run")
        else:
            write_json(self.config_file, self.config.to_dict())
        for leftover in self.path.glob(f".*{TEMP_MARK}*"):   # half-written files of a killed writer
            leftover.unlink(missing_ok=True)
        self.failed_file.unlink(missing_ok=True)              # a restart retries a diverged run
        if not self.started:
            self.metrics_file.unlink(missing_ok=True)         # rows without a checkpoint cannot be resumed
        write_json(self.path / "env.json", environment(device, self.config.seed))

    def _wipe(self) -> None:
        """Remove everything but the lock (which this process holds)."""
        import shutil

        for child in self.path.iterdir():
            if child.name in (LOCK_FILE, HOLDER_FILE):
                continue
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()

    # ------------------------------------------------------------- metrics log
    def metrics(self) -> list[dict]:
        """The rows of metrics.jsonl; a torn last line (a writer killed mid-append) is left out,
        any other unreadable line is a UserError naming the file."""
        if not self.metrics_file.exists():
            return []
        lines = self.metrics_file.read_text().splitlines()
        rows = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rows.append(from_jsonable(json.loads(line)))
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    break                                   # torn last line: that epoch never finished
                raise UserError(f"corrupt {self.metrics_file}: line {i + 1} is not JSON; {fix_for(self.path)}") from None
        return rows

    def resume_metrics(self, epochs: int) -> list[dict]:
        """Keep exactly the rows of the `epochs` epochs the checkpoint holds: later rows (a kill
        between the log and the checkpoint) are dropped; fewer rows (lost lines) are refused,
        as the summary would then cover fewer epochs than were trained."""
        rows = self._resumable_rows(epochs)
        atomic_write_bytes(self.metrics_file, "".join(json.dumps(_jsonable(r)) + "\n" for r in rows).encode())
        return rows

    def _resumable_rows(self, epochs: int) -> list[dict]:
        rows = self.metrics()
        if [r.get("epoch") for r in rows[:epochs]] != list(range(1, epochs + 1)):
            raise UserError(f"{self.metrics_file} holds epochs {[r.get('epoch') for r in rows]} but the checkpoint "
                            f"is at epoch {epochs}: rows are lost, the run cannot resume; {fix_for(self.path)}")
        return rows[:epochs]

    def check_resumable(self) -> None:
        """An unfinished run can resume: its checkpoint loads and the log holds its epochs."""
        self._resumable_rows(self.load_checkpoint()["epoch"])

    def append_metrics(self, row: dict) -> None:
        try:
            with open(self.metrics_file, "a") as f:
                f.write(json.dumps(_jsonable(row)) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:          # a full disk: name the file (a torn row is dropped at resume)
            with_filename(e, self.metrics_file)
            raise

    # ------------------------------------------------------------- checkpoints
    def save_checkpoint(self, state: dict) -> None:
        """Atomically, after listing the new digest beside the previous one: a kill at any
        point leaves a checkpoint that loads and matches its list."""
        data = torch_bytes(state)
        digest = hashlib.sha256(data).hexdigest()
        if self._checkpoint_digest is None and self.checkpoint_file.exists():
            self._checkpoint_digest = sha256_file(self.checkpoint_file)
        sums = [digest] + ([self._checkpoint_digest] if self._checkpoint_digest else [])
        atomic_write_bytes(self.checkpoint_sums, ("\n".join(sums) + "\n").encode())
        atomic_write_bytes(self.checkpoint_file, data)
        self._checkpoint_digest = digest

    def load_checkpoint(self) -> dict:
        data = self.checkpoint_file.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if self.checkpoint_sums.exists() and digest not in self.checkpoint_sums.read_text().split():
            raise UserError(f"corrupt checkpoint {self.checkpoint_file} (fails its checksum); "
                            f"{fix_for(self.path)}")
        try:
            import io

            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        except Exception as e:  # torch raises several types for truncated/corrupt files
            raise UserError(f"corrupt checkpoint {self.checkpoint_file} ({type(e).__name__}); "
                            f"{fix_for(self.path)}") from e
        if not isinstance(state, dict) or state.get("run_id") != self.config.run_id:
            other = state.get("run_id") if isinstance(state, dict) else None
            raise UserError(f"checkpoint {self.checkpoint_file} belongs to run {other}, "
                            f"not {self.config.run_id}; {fix_for(self.path)}")
        self._checkpoint_digest = digest
        return state

    # ------------------------------------------------------------- the end
    def save_model(self, state_dict: dict) -> str:
        atomic_torch_save(state_dict, self.model_file)
        digest = sha256_file(self.model_file)
        atomic_write_bytes(self.path / "model.sha256", (digest + "\n").encode())
        return digest

    def verify_model(self) -> str:
        """The sha256 of model.pt, checked against model.sha256 (UserError naming the fix if not)."""
        sums = self.path / "model.sha256"
        if not self.model_file.exists() or not sums.exists():
            raise UserError(f"run {self.path} has no model.pt or model.sha256; {fix_for(self.path)}")
        actual = sha256_file(self.model_file)
        if actual != sums.read_text().strip():
            raise UserError(f"{self.model_file} fails its checksum (corrupt or replaced); {fix_for(self.path)}")
        return actual

    def verify(self, deep: bool = False) -> None:
        """A finished run is whole: readable summary, weights matching their checksum, a log of
        exactly its epochs (the renderer reads it); deep (`store verify`): outputs.pt loads too."""
        epochs = self.summary().get("epochs")
        self.verify_model()
        self.verify_log(epochs)
        if deep:
            self.verify_outputs()
            if self.checkpoint_file.exists():    # kept after the end: some figures read the loss state
                self.load_checkpoint()

    def verify_log(self, epochs) -> None:
        """metrics.jsonl of a finished run: every line JSON (no torn last line), epochs 1..N."""
        lines = self.metrics_file.read_text().splitlines() if self.metrics_file.exists() else []
        rows = []
        for i, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise UserError(f"corrupt {self.metrics_file}: line {i + 1} of {len(lines)} is not JSON (a finished "
                                f"run's log is whole); {fix_for(self.path)}") from None
        found = [r.get("epoch") if isinstance(r, dict) else None for r in rows]
        if found != list(range(1, (epochs or 0) + 1)):
            raise UserError(f"{self.metrics_file} holds epochs {_span(found)} but the run finished {epochs} "
                            f"epoch(s); {fix_for(self.path)}")

    def verify_outputs(self) -> None:
        """outputs.pt (test logits and features, read by the figures) loads."""
        path = self.path / "outputs.pt"
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  torch raises several types for truncated/corrupt files
            raise UserError(f"corrupt {path} ({type(e).__name__}); {fix_for(self.path)}") from e

    def write_summary(self, summary: dict) -> None:
        write_json(self.summary_file, summary)

    def summary(self) -> dict:
        summary = read_json(self.summary_file)
        if not isinstance(summary, dict) or "final" not in summary:
            raise UserError(f"corrupt {self.summary_file} (no final epoch); {fix_for(self.path)}")
        return summary

    def mark_failed(self, reason: str, epoch: int) -> None:
        write_json(self.failed_file, {"reason": reason, "epoch": epoch, "time": time.strftime("%Y-%m-%d %H:%M:%S")})
