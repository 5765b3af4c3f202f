"""Run directories: the only thing `analysis/` reads. One store for every paper:

results/runs/<run-id>/          (the run id is the config hash; the experiment is only a tag in
                                 config.json, so every script that asks for the same config
                                 finds the same run: teachers, demo, papers, comparison)
  config.json     the resolved RunConfig
  env.json        git commit and dirty flag, seed, torch/torchvision/python versions, device
  metrics.jsonl   one JSON object per finished epoch, flushed as it goes
  summary.json    final summary (written last: its presence marks the run finished)
  checkpoint.pt   last end-of-epoch state, written atomically (temp file + rename)
  model.pt        final weights (+ model.sha256), for teachers and later analysis
"""
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

from common import UserError
from engine.config import RunConfig, _jsonable, from_jsonable

RESULTS_ROOT_ENV = "LOGIT_KD_RESULTS"


def results_root() -> Path:
    """Where run directories live: $LOGIT_KD_RESULTS or ./results (relative to the working directory)."""
    return Path(os.environ.get(RESULTS_ROOT_ENV, "results"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj, path: Path) -> None:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n").encode())


def semantic(config: RunConfig) -> dict:
    """What a run computes: its config without the tags that do not enter the run id."""
    return from_jsonable(_jsonable(config.semantic_dict()))


def read_json(path: Path):
    return from_jsonable(json.loads(Path(path).read_text()))


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
    import torchvision

    return {"seed": seed, "device": device, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "threads": torch.get_num_threads(), **git_state()}


STORE = "runs"


def store_root(root: Path | None = None) -> Path:
    """The run store: <results root>/runs/."""
    return (root or results_root()) / STORE


class RunDir:
    def __init__(self, config: RunConfig, root: Path | None = None):
        self.config = config
        self.path = store_root(root) / config.run_id

    config_file = property(lambda self: self.path / "config.json")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    summary_file = property(lambda self: self.path / "summary.json")
    checkpoint_file = property(lambda self: self.path / "checkpoint.pt")
    model_file = property(lambda self: self.path / "model.pt")

    @property
    def finished(self) -> bool:
        return self.summary_file.exists()

    failed_file = property(lambda self: self.path / "failed.json")

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
        """Start fresh (force) or check that an existing directory belongs to the same config."""
        if force and self.path.exists():
            import shutil

            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        if self.config_file.exists():
            on_disk = RunConfig.from_dict(read_json(self.config_file))
            if on_disk.run_id != self.config.run_id or semantic(on_disk) != semantic(self.config):
                raise UserError(f"{self.config_file} holds a different config; use --force to redo the run")
        else:
            write_json(self.config_file, self.config.to_dict())
        write_json(self.path / "env.json", environment(device, self.config.seed))

    def metrics(self) -> list[dict]:
        if not self.metrics_file.exists():
            return []
        return [from_jsonable(json.loads(line)) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, epochs: int) -> None:
        """Keep the first `epochs` rows (a kill between the checkpoint and the log leaves them out of step)."""
        rows = self.metrics()[:epochs]
        atomic_write_bytes(self.metrics_file, "".join(json.dumps(_jsonable(r)) + "\n" for r in rows).encode())

    def append_metrics(self, row: dict) -> None:
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(_jsonable(row)) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def save_checkpoint(self, state: dict) -> None:
        atomic_torch_save(state, self.checkpoint_file)

    def load_checkpoint(self) -> dict:
        try:
            state = torch.load(self.checkpoint_file, map_location="cpu", weights_only=False)
        except Exception as e:  # torch raises several types for truncated/corrupt files
            raise UserError(f"corrupt checkpoint {self.checkpoint_file} ({type(e).__name__}); "
                            f"delete it or use --force to restart the run") from e
        if state.get("run_id") != self.config.run_id:
            raise UserError(f"checkpoint {self.checkpoint_file} belongs to run {state.get('run_id')}, "
                            f"not {self.config.run_id}; use --force to restart")
        return state

    def save_model(self, state_dict: dict) -> str:
        atomic_torch_save(state_dict, self.model_file)
        digest = sha256_file(self.model_file)
        atomic_write_bytes(self.path / "model.sha256", (digest + "\n").encode())
        return digest

    def write_summary(self, summary: dict) -> None:
        write_json(self.summary_file, summary)

    def summary(self) -> dict:
        return read_json(self.summary_file)
