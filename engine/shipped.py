"""Teachers shipped with the repository, as mdistiller ships its CIFAR-100 teachers.

models/shipped/<run id>/ holds the finished run directory of a mini teacher of seed 0, trained by
this code on this project's 2-core CPU (its env.json says where and with what): the files the
students and the renderer read (config, summary, metrics, weights, saved test outputs, fit) and
SHA256SUMS over them. Its config.json is the config the plans ask for, so its run id is the folder's
name and every student that distils it is the same run as with a teacher trained here.

`make demo` copies a shipped teacher into the run store instead of training it (the teacher was its
critical path); `--train-teachers` trains it instead. Only a run id with nothing in the store is
unpacked, after every checksum is checked, so no run is overwritten. When a config change moves a
teacher's run id, the shipped copy no longer matches any plan and the teacher is trained (a test
says so, so the copy is re-shipped: `python -m reproduce.store ship RUN_ID`).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from common import UserError
from common.files import atomic_write_text
from engine.config import RunConfig
from engine.rundir import RunDir, read_json, sha256_file, store_root

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "shipped"
FILES = ("config.json", "summary.json", "metrics.jsonl", "model.pt", "model.sha256", "outputs.pt", "fit.json",
         "env.json", "log.txt")
SUMS = "SHA256SUMS"


def shipped_ids(root: Path = SHIPPED) -> list[str]:
    return sorted(p.name for p in root.iterdir() if (p / SUMS).exists()) if root.is_dir() else []


def verify(folder: Path) -> None:
    """Every listed file is there with its checksum, and config.json hashes to the folder's name."""
    listed = dict(line.split("  ")[::-1] for line in (folder / SUMS).read_text().splitlines() if line)
    for name, digest in listed.items():
        path = folder / name
        if not path.exists() or sha256_file(path) != digest:
            raise UserError(f"shipped teacher {path} is missing or damaged (sha256 differs from {SUMS}); "
                            f"restore it with git checkout -- {folder}")
    run_id = RunConfig.from_dict(read_json(folder / "config.json")).run_id
    if run_id != folder.name:
        raise UserError(f"shipped teacher {folder.name}: its config.json has run id {run_id}; re-ship it")


def unpack_shipped(configs, log=print, root: Path = SHIPPED) -> list[str]:
    """Copy the shipped teachers that `configs` distil and the store lacks entirely into the store;
    returns their run ids."""
    wanted = set(shipped_ids(root)) & {t for c in configs for t in c.teachers}
    unpacked = []
    for c in configs:
        if c.run_id not in wanted or RunDir(c).status() != "absent":
            continue
        source = root / c.run_id
        verify(source)
        target = RunDir(c).path
        partial = target.with_name(f".{target.name}.unpacking")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial)
        (partial / SUMS).unlink()
        partial.rename(target)                      # appears whole or not at all
        log(f"teacher {c.run_id}: the shipped copy ({source.relative_to(root.parents[1])}, sha256 checked), "
            "not trained")
        unpacked.append(c.run_id)
    return unpacked


def ship(run_id: str, root: Path | None = None, out: Path = SHIPPED) -> Path:
    """Copy a finished teacher of the store into models/shipped/<run id>/ with SHA256SUMS."""
    source = store_root(root) / run_id
    rd = RunDir.at(source) if (source / "config.json").exists() else None
    if rd is None or not rd.finished or not rd.config.is_teacher:
        raise UserError(f"{source} is not a finished teacher run (python -m reproduce.store list shows the runs)")
    rd.verify(deep=True)
    target = out / run_id
    if target.exists():
        raise UserError(f"{target} exists; delete it first to re-ship {run_id}")
    target.mkdir(parents=True)
    sums = []
    for name in FILES:
        if (source / name).exists():
            shutil.copy2(source / name, target / name)
            sums.append(f"{sha256_file(target / name)}  {name}")
    atomic_write_text(target / SUMS, "\n".join(sums) + "\n")
    return target
