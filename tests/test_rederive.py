"""Every committed table, interval and verdict re-derived from the committed runs.csv alone (the run
store is local and can be lost); folders rendered before the evidence protocol say so (LEGACY.md)."""
import shutil
from pathlib import Path

import pytest

from analysis.render import CHECKS_CSV, RUNS_CSV, read_manifest, render

ROOT = Path(__file__).resolve().parent.parent / "results"
FOLDERS = sorted(p.parent for p in ROOT.glob("*/*/manifest"))
DERIVED = [f for f in FOLDERS if (f / RUNS_CSV).exists()]


def legacy_files(folder: Path) -> set | None:
    """The stems LEGACY.md names on its 'Legacy files:' line; None = the whole folder is legacy."""
    note = folder / "LEGACY.md"
    if not note.exists():
        return set()
    line = next((ln for ln in note.read_text().splitlines() if ln.startswith("Legacy files:")), None)
    return None if line is None else {x.strip(" `.") for x in line.split(":", 1)[1].split(",")}


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f"{f.parent.name}/{f.name}")
def test_each_results_folder_has_its_runs_or_says_it_is_legacy(folder):
    whole = legacy_files(folder) is None
    assert (folder / RUNS_CSV).exists() != whole, folder


@pytest.mark.parametrize("folder", DERIVED, ids=lambda f: f"{f.parent.name}/{f.name}")
def test_tables_and_verdicts_rederive_from_runs_csv(folder, tmp_path):
    copy = tmp_path / folder.name
    shutil.copytree(folder / "manifest", copy / "manifest")
    shutil.copy(folder / RUNS_CSV, copy / RUNS_CSV)
    if (folder / CHECKS_CSV).exists():
        shutil.copy(folder / CHECKS_CSV, copy / CHECKS_CSV)
    legacy = legacy_files(folder)
    names = [p.name[: -len(".json")] for p in sorted((copy / "manifest").glob("*.json"))
             if p.name.split(".")[0] not in legacy]
    written = render(copy, names, runs_csv=copy / RUNS_CSV)
    assert written
    for path in written:
        committed = folder / path.name
        assert committed.exists(), f"{path.name} is rendered but not committed"
        assert path.read_text() == committed.read_text(), f"{folder.name}/{path.name} differs from its runs.csv"
    kinds = {read_manifest(p)["name"]: read_manifest(p).get("kind") for p in (folder / "manifest").glob("*.table.json")}
    cells = {n for n, k in kinds.items() if k == "cells" and n not in legacy}
    assert cells <= {p.stem for p in written}, "a cells table was not re-derived"
