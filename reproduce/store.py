"""The run store (results/runs/<run-id>/): move older layouts into it, list what it holds.

    python -m reproduce.store migrate        # results/<experiment>/runs/<id> and results/teachers/runs/<id>
                                             # -> results/runs/<id> (one store for every script)
    python -m reproduce.store list           # one line per run: status, epochs, tag, run id

Before the one store, each experiment kept its own `results/<experiment>/runs/`; the run id
never held the experiment, so moving a directory keeps it valid. A run found twice keeps the
finished copy (the first finished one when both are); the other is removed and reported.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from engine.rundir import STORE, read_json, results_root, store_root
from reproduce.cli import main_guard


def old_run_dirs(root: Path) -> list[Path]:
    """Run directories of the per-experiment layout: <root>/<experiment>/runs/<id>/."""
    return sorted(p for p in root.glob("*/runs/*") if p.parent.parent.name != STORE and (p / "config.json").exists())


def _finished(path: Path) -> bool:
    return (path / "summary.json").exists()


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
        elif _finished(src) and not _finished(dest):
            shutil.rmtree(dest)
            shutil.move(str(src), str(dest))
            counts["replaced_unfinished"] += 1
            log(f"replaced the unfinished {dest} by the finished copy from {src.parent.parent.name}")
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


def list_runs(root: Path | None = None, log=print) -> list[dict]:
    rows = []
    for path in sorted(store_root(root).glob("*")):
        if not (path / "config.json").exists():
            continue
        config = read_json(path / "config.json")
        status = "done" if _finished(path) else ("started" if (path / "checkpoint.pt").exists() else "created")
        epochs = config.get("recipe", {}).get("epochs")
        rows.append({"run_id": path.name, "status": status, "tag": config.get("experiment", ""), "epochs": epochs})
        log(f"{status:<8} {str(epochs):>5}  {config.get('experiment', ''):<12} {path.name}")
    return rows


@main_guard
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m reproduce.store", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("migrate", "list"))
    p.add_argument("--root", help="results root (default $LOGIT_KD_RESULTS or ./results)")
    args = p.parse_args(argv)
    root = Path(args.root) if args.root else None
    return migrate(root) if args.command == "migrate" else list_runs(root)


if __name__ == "__main__":
    main()
