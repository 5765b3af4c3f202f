"""The run store (results/runs/<run-id>/): list, check and (re)train its runs, migrate old layouts.

    python -m reproduce.store list               # one line per run: status, epochs, tag, run id
    python -m reproduce.store verify             # every run's files intact? one line per damaged run
    python -m reproduce.store train RUN_ID       # train (or resume) a run from its config.json
    python -m reproduce.store train RUN_ID --force   # retrain it from scratch (e.g. corrupt weights)
    python -m reproduce.store migrate            # results/<experiment>/runs/<id> and results/teachers/runs/<id>
                                                 # -> results/runs/<id> (one store for every script)
    python -m reproduce.store import-teacher FILE --format mdistiller --model resnet32x4 --dataset cifar100
                                                 # a released teacher as a finished run; prints its run id last
                                                 # (engine/imported.py; torchvision: --dataset imagenet)
    python -m reproduce.store ship RUN_ID         # a finished teacher -> models/shipped/RUN_ID/ with SHA256SUMS
                                                 # (engine/shipped.py: what `make demo` copies instead of training)

`train` is the command the engine's "corrupt ..." messages name: it works for any run,
teacher or student, as its config.json says everything the run computes.

Before the one store, each experiment kept its own `results/<experiment>/runs/`; the run id
never held the experiment, so moving a directory keeps it valid. A run found twice keeps the
finished copy (the first finished one when both are), else the fuller one (the later checkpoint
that loads, then more metrics rows); the other is removed and reported.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from common import UserError
from engine.imported import import_teacher
from engine.rundir import RESULTS_ROOT_ENV, STORE, RunDir, check_results_root, results_root, store_root
from models.released import FORMATS
from reproduce.cli import Parser, main_guard, refuse_unused


def old_run_dirs(root: Path) -> list[Path]:
    """Run directories of the per-experiment layout: <root>/<experiment>/runs/<id>/."""
    return sorted(p for p in root.glob("*/runs/*") if p.parent.parent.name != STORE and (p / "config.json").exists())


def _finished(path: Path) -> bool:
    return (path / "summary.json").exists()


def progress(path: Path) -> tuple:
    """How far a copy of a run got: (finished, epoch of a checkpoint that loads, metrics rows)."""
    try:
        rd = RunDir.at(path)
        epoch = rd.load_checkpoint()["epoch"] if rd.started else 0
        rows = len(rd.metrics())
    except (UserError, OSError, TypeError, KeyError):
        epoch, rows = -1, 0
    return _finished(path), epoch, rows


def migrate(root: Path | None = None, log=print) -> dict:
    """Move every old-layout run directory into the store; returns counts."""
    root = Path(root) if root is not None else results_root()
    store = store_root(root)
    counts = {"moved": 0, "duplicates_removed": 0, "replaced_unfinished": 0}
    for src in old_run_dirs(root):
        dest = store / src.name
        if not dest.exists():
            store.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dest))
            counts["moved"] += 1
        elif not _finished(dest) and progress(src) > progress(dest):
            shutil.rmtree(dest)
            shutil.move(str(src), str(dest))
            counts["replaced_unfinished"] += 1
            log(f"replaced the unfinished {dest} by the {'finished' if _finished(src) else 'fuller'} copy "
                f"from {src.parent.parent.name}")
        else:
            shutil.rmtree(src)
            counts["duplicates_removed"] += 1
            log(f"{src.name}: already in the store, removed the copy under {src.parent.parent.name}/runs")
    for runs in root.glob("*/runs"):
        if runs.parent.name != STORE and runs.is_dir() and not any(runs.iterdir()):
            runs.rmdir()
    log(f"migrate: {counts['moved']} moved, {counts['replaced_unfinished']} replaced an unfinished copy, "
        f"{counts['duplicates_removed']} duplicate(s) removed; store: {store}")
    return counts


def run_paths(root: Path | None = None) -> list[Path]:
    store = store_root(root)
    if not store.is_dir():
        raise UserError(f"no run store at {store}")
    return sorted(p for p in store.iterdir() if (p / "config.json").exists())


def list_runs(root: Path | None = None, log=print) -> list[dict]:
    rows = []
    for path in run_paths(root):
        try:
            rd = RunDir.at(path)
            status, epochs, tag = rd.status(), rd.config.recipe.get("epochs"), rd.config.experiment
        except (UserError, TypeError, KeyError):
            status, epochs, tag = "corrupt", None, ""
        rows.append({"run_id": path.name, "status": status, "tag": tag, "epochs": epochs})
        log(f"{status:<8} {str(epochs):>5}  {tag:<12} {path.name}")
    return rows


def check_run(path: Path) -> str | None:
    """None when the run's files are whole, else one line saying what is damaged and the fix."""
    try:
        rd = RunDir.at(path)
        if rd.finished:
            rd.verify(deep=True)
        elif rd.started:
            rd.check_resumable()
    except UserError as e:
        return str(e)
    except (TypeError, KeyError) as e:
        return f"{path / 'config.json'} is not a run config ({e}); delete {path} and rerun the command that planned it"
    return None


def verify(root: Path | None = None, log=print) -> list[str]:
    """One line per damaged run (to stderr); returns them."""
    problems = [p for p in map(check_run, run_paths(root)) if p]
    for line in problems:
        print(f"damaged: {line}", file=sys.stderr)
    log(f"verify: {len(problems)} damaged run(s) in {store_root(root)}")
    return problems


def train_run(run_id: str, force: bool = False, root: Path | None = None, **train_kw) -> RunDir:
    """Train (or resume; force: retrain from scratch) the run `run_id` of the store from its config.json."""
    from engine import train

    path = store_root(root) / run_id
    if not (path / "config.json").exists():
        raise UserError(f"no run '{run_id}' in {store_root(root)} (python -m reproduce.store list shows them)")
    check_results_root(root)
    with _results_root(root):            # the engine finds the run and its teachers there
        rd = RunDir.at(path)
        train(rd.config, force=force, **train_kw)
    return rd


@contextmanager
def _results_root(root: Path | None):
    old = os.environ.get(RESULTS_ROOT_ENV)
    if root is not None:
        os.environ[RESULTS_ROOT_ENV] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(RESULTS_ROOT_ENV, None)
        else:
            os.environ[RESULTS_ROOT_ENV] = old


def build_parser() -> Parser:
    p = Parser(prog="python -m reproduce.store", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("list", "verify", "train", "migrate", "import-teacher", "ship"))
    p.add_argument("run_id", nargs="?", metavar="RUN_ID | FILE",
                   help="train: the run to (re)train; ship: the teacher to ship; import-teacher: the released weights file")
    p.add_argument("--root", help="results root (default $LOGIT_KD_RESULTS or ./results)")
    p.add_argument("--force", action="store_true", help="train: wipe the run and retrain it from scratch")
    p.add_argument("--device", default="auto", help="train: auto, cpu, cuda, cuda:N")
    p.add_argument("--data-root", help="train: data folder (default $LOGIT_KD_DATA or ./data_cache)")
    p.add_argument("--wait", action="store_true", help="train: wait for another process training the run")
    p.add_argument("--quiet", action="store_true", help="train: no per-epoch lines")
    p.add_argument("--format", choices=FORMATS, help="import-teacher: mdistiller (a checkpoint dict whose 'model' "
                   "is the state dict) or torchvision (a bare state dict)")
    p.add_argument("--model", help="import-teacher: our model name (resnet32x4, wrn_40_2, vgg13, ResNet50, resnet34, ...)")
    p.add_argument("--dataset", help="import-teacher: cifar100 (mdistiller) or imagenet (torchvision)")
    return p


@main_guard
def main(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    takes_one = args.command in ("train", "import-teacher", "ship")
    if takes_one != (args.run_id is not None):
        p.error("train and ship take one RUN_ID, import-teacher one FILE; the other commands take none")
    if args.command != "train":
        refuse_unused({"--force": args.force, "--device": args.device != "auto", "--data-root": args.data_root is not None,
                       "--wait": args.wait, "--quiet": args.quiet}, f"{args.command} trains nothing (train takes them)")
    root = Path(args.root) if args.root else None
    if root is not None and root.exists() and not root.is_dir():
        raise UserError(f"--root {root} is a file, not a folder; give the results folder (the one holding runs/)")
    if args.command == "migrate":
        check_results_root(root)
    if args.command == "ship":
        from engine.shipped import ship

        path = ship(args.run_id, root)
        print(path)
        return path
    if args.command == "import-teacher":
        missing = [f"--{k}" for k in ("format", "model", "dataset") if getattr(args, k) is None]
        if missing:
            p.error(f"import-teacher needs {', '.join(missing)}")
        with _results_root(root):
            rd = import_teacher(args.run_id, args.format, args.model, args.dataset)
        print(rd.path.name)             # the last line: the run id
        return rd
    if args.command == "migrate":
        return migrate(root)
    if args.command == "list":
        return list_runs(root)
    if args.command == "verify":
        problems = verify(root)
        if problems:
            sys.exit(1)
        return problems
    rd = train_run(args.run_id, args.force, root, device=args.device, data_root=args.data_root, wait=args.wait,
                   quiet=args.quiet)
    print(f"run directory: {rd.path} ({rd.status()})")
    return rd


if __name__ == "__main__":
    main()
