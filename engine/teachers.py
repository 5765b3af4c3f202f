"""Teachers: ordinary CE runs (tagged experiment 'teachers') in the one run store.

Their run id derives from dataset (+options), model, label noise, seed and recipe, so a
teacher is trained once and found again by its config. Its final weights carry a
sha256 checksum; a student records which teacher (run id and checksum) it used, and the
engine re-evaluates a teacher before distilling from it.
"""
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from common import UserError
from engine.config import RunConfig, LabelNoise, make_config
from engine.rundir import RunDir, RunLock, store_command, store_root
from models import build_model

TEACHER_EXPERIMENT = "teachers"
ACCURACY_TOLERANCE = 0.5  # percentage points between recorded and re-measured test top-1


def teacher_config(dataset: str, model: str, *, seed: int = 0, recipe: str = "smoke", recipe_overrides=None,
                   dataset_options=None, model_options=None, label_noise: LabelNoise | None = None) -> RunConfig:
    return make_config(TEACHER_EXPERIMENT, dataset, model, loss="ce", recipe=recipe,
                       recipe_overrides=recipe_overrides, seed=seed, dataset_options=dataset_options,
                       model_options=model_options, label_noise=label_noise)


def teacher_rundir(run_id: str) -> RunDir:
    """A teacher is any run of the store (a distilled middle model teaches the next stage in
    sequential distillation), found by its run id alone."""
    path = store_root() / run_id
    if (path / "config.json").exists():
        return RunDir.at(path)
    raise UserError(f"no teacher run '{run_id}' in {store_root()}; train it first (make teachers)")


@dataclass
class LoadedTeacher:
    run_id: str
    model: torch.nn.Module
    sha256: str
    recorded_top1: float | None     # None: released weights not measured yet (engine/imported.py)
    num_classes: int


def load_teacher(run_id: str, num_classes: int, in_channels: int, device) -> LoadedTeacher:
    """The teacher's weights, checked against their checksum. Read under the teacher's lock, so
    a teacher that another process is (re)training is waited for, never read half-written."""
    rd = teacher_rundir(run_id)
    with _reading(rd.path):
        if not rd.finished or not rd.model_file.exists():
            raise UserError(f"teacher run {rd.path} is not finished; finish it: {store_command(run_id, force=False)}")
        recorded_top1 = rd.summary()["final"].get("test_top1")    # None: imported, not measured yet
        digest = rd.verify_model()
        state = torch.load(rd.model_file, map_location="cpu", weights_only=True)
    model = build_model(rd.config.model, num_classes=num_classes, in_channels=in_channels, **rd.config.model_options)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"teacher {run_id} does not fit a {num_classes}-class {rd.config.model}: "
                        f"{str(e).splitlines()[0]}") from e
    model.to(device).eval().requires_grad_(False)
    return LoadedTeacher(run_id, model, digest, recorded_top1, num_classes)


@contextmanager
def _reading(path):
    """Hold the run's lock while reading it (a read-only store, where nobody trains, is read as is)."""
    lock = RunLock(path)
    try:
        lock.acquire(wait=True)
    except PermissionError:
        yield
        return
    try:
        yield
    finally:
        lock.release()


def check_teacher_accuracy(teacher: LoadedTeacher, measured_top1: float) -> None:
    if abs(measured_top1 - teacher.recorded_top1) > ACCURACY_TOLERANCE:
        raise UserError(f"teacher {teacher.run_id} scores {measured_top1:.2f}% on this test set but its run recorded "
                        f"{teacher.recorded_top1:.2f}%: wrong data or weights, refusing to distill; if its "
                        f"weights are damaged, retrain it: {store_command(teacher.run_id)}")
