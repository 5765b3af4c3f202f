"""Teacher runs whose weights come from a released file instead of training: mdistiller's
CIFAR-100 teachers (`cifar_teachers/<name>_vanilla/ckpt_epoch_240.pth`) and torchvision's
ImageNet ResNets.

    python -m reproduce.store import-teacher FILE --format mdistiller --model resnet32x4 --dataset cifar100

An imported run is a finished teacher run of the store (results/runs/<run-id>/): config.json is
a teacher config whose `imported` field holds the format and the file's sha256 (so the run id
depends on the bytes; the file's path is recorded as a tag), model.pt + model.sha256 hold the
file's weights mapped into our model (models/released.py: declared name tables, every shape
checked), summary.json says where they came from. No data set is read: the test accuracy is
measured when a student first uses the teacher on the teacher's own test set, and then recorded
in its summary.json (last epoch, last-10 mean and best all hold that one measurement, which is
what analysis/runs.py reads) and outputs.pt, as a trained teacher has them. An imported run is
never trained: `python -m reproduce.store train` on it says how to import it again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from common import UserError
from engine.config import RunConfig
from engine.rundir import RunDir, RunLock, atomic_torch_save, hold
from engine.teachers import teacher_config
from models import build_model
from models.released import FORMATS, map_names, released_state


@dataclass(frozen=True)
class Setting:
    """What an imported teacher of one (format, data set) stands for."""
    dataset_options: dict     # the data it was trained on (normalisation), as our planned teachers have it
    recipe: str               # the recipe of the trained teacher it replaces in the paper plans (nothing trains)
    num_classes: int
    label: str                # as tables show it
    in_channels: int = 3


SETTINGS = {
    # mdistiller's (CRD's) CIFAR-100 teachers: 240 epochs of the mdistiller protocol, mdistiller's normalisation
    ("mdistiller", "cifar100"): Setting({"norm": "mdistiller"}, "mdistiller_cifar", 100, "released (mdistiller)"),
    # torchvision's IMAGENET1K_V1 weights (its own 90-epoch recipe; mdistiller loads the same ones)
    ("torchvision", "imagenet"): Setting({}, "imagenet", 1000, "released (torchvision)"),
}


def setting(fmt: str, dataset: str) -> Setting:
    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}'; known: {', '.join(FORMATS)}")
    if (fmt, dataset) not in SETTINGS:
        known = ", ".join(f"--format {f} --dataset {d}" for f, d in SETTINGS)
        raise UserError(f"no released {fmt} teachers for {dataset}; known: {known}")
    return SETTINGS[(fmt, dataset)]


def imported_config(model: str, dataset: str, fmt: str, sha256: str, file: str = "") -> RunConfig:
    """The teacher config of a released file: the same for every path to the same bytes."""
    s = setting(fmt, dataset)
    base = teacher_config(dataset, model, seed=0, recipe=s.recipe, dataset_options=s.dataset_options)
    return dataclasses.replace(base, imported={"format": fmt, "sha256": sha256, "file": str(file)})


def label(config: RunConfig) -> str:
    """'released (mdistiller)' for an imported run, '' for a trained one."""
    return SETTINGS[(config.imported["format"], config.dataset)].label if config.imported else ""


def import_command(config) -> str:
    """The command that (re)imports an imported run (a RunConfig or its config.json dict)."""
    c = config.to_dict() if isinstance(config, RunConfig) else config
    imp = c["imported"]
    return (f"python -m reproduce.store import-teacher {imp.get('file') or 'FILE'} --format {imp['format']} "
            f"--model {c['model']} --dataset {c['dataset']} (the file with sha256 {imp['sha256'][:12]}...)")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_weights(data: bytes, fmt: str, model_name: str, dataset: str, source: str) -> tuple[torch.nn.Module, dict]:
    """(our model holding the file's weights, what the file says of itself) from its bytes."""
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for files it cannot read safely
        raise UserError(f"cannot read {source} as torch weights ({type(e).__name__}): not a released checkpoint?") from e
    state = released_state(obj, fmt, source)
    s = setting(fmt, dataset)
    model = build_model(model_name, num_classes=s.num_classes, in_channels=s.in_channels)
    model.load_state_dict(map_names(state, fmt, model_name, model, source))
    about = {}
    for key in ("accuracy", "best_acc", "epoch"):          # what CRD / mdistiller checkpoints carry
        value = obj.get(key) if fmt == "mdistiller" else None
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)):
            about[f"file_{key}"] = value
    return model, about


def import_teacher(file, fmt: str, model: str, dataset: str, log=print) -> RunDir:
    """Make (or find) the finished teacher run of a released file; returns its run directory."""
    setting(fmt, dataset)
    path = Path(file)
    if not path.is_file():
        raise UserError(f"no file {path}")
    data = path.read_bytes()
    config = imported_config(model, dataset, fmt, sha256_bytes(data), str(path))
    rd = RunDir(config)
    if rd.finished and _intact(rd):
        log(f"already imported: {rd.path}")
        return rd
    net, about = read_weights(data, fmt, model, dataset, str(path))
    with hold([rd.path]):
        rd.create("cpu", force=True)               # a damaged copy is replaced
        digest = rd.save_model(net.state_dict())
        rd.write_summary({
            "run_id": config.run_id, "model_sha256": digest, "epochs": 0, "train_time_s": 0.0, "teachers": [],
            "params": sum(p.numel() for p in net.parameters()),
            "imported": {"format": fmt, "file": str(path), "sha256": config.imported["sha256"], **about},
            # measured at first use (record_first_use): until then analysis reads NaN, never 0
            "final": {}, "last10_mean": {}, "best": {"epoch": None, "test_top1": None, "of_epochs": 0}})
    log(f"imported {path} ({fmt}) as teacher {model} on {dataset}: {rd.path}")
    return rd


def _intact(rd: RunDir) -> bool:
    try:
        rd.verify()
        return True
    except UserError:
        return False


def record_first_use(run_id: str, student: RunConfig, bundle, preds, metrics: dict) -> float | None:
    """Record an imported teacher's test accuracy, measured by the first student that uses it on
    the teacher's own test set (not a validation split, not other data options); returns it, or
    None when this data is not that test set (then nothing is recorded)."""
    from engine.teachers import teacher_rundir

    rd = teacher_rundir(run_id)
    c = rd.config
    if ((student.dataset, student.dataset_options) != (c.dataset, c.dataset_options)
            or bundle.info.get("evaluation", "test") != "test"):
        return None
    lock = RunLock(rd.path)
    try:
        lock.acquire(wait=True)
    except PermissionError:                        # a read-only store: measure, record nothing
        return metrics["test_top1"]
    try:
        summary = rd.summary()
        if summary["final"].get("test_top1") is not None:     # another student recorded it meanwhile
            return summary["final"]["test_top1"]
        atomic_torch_save({"logits": preds.logits.cpu(), "labels": bundle.test.labels.cpu(),
                           "features": preds.features.cpu(), "feature_norms": preds.feature_norms.cpu(),
                           "teacher_logits": None}, rd.path / "outputs.pt")
        row = {**metrics, "feature_norm": preds.feature_norms.mean().item()}
        rd.write_summary(summary | {
            "final": row, "last10_mean": row | {"epochs": 1},
            "best": {"epoch": None, "test_top1": row["test_top1"], "of_epochs": 1},
            "measured": {"by": student.run_id, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                         "note": "one evaluation of the released weights, at first use"}})
    finally:
        lock.release()
    return metrics["test_top1"]
