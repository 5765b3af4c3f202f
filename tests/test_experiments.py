"""Every registered paper experiment through the shared runner: its plan lists its teachers, the
dry run works without data, a smoke-scale run renders every table and figure, a missing run
prints `missing` (never 0), and the paper numbers are resolved by key."""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.papers import experiments
from reproduce.plan import Cell, PaperNumber, Table, configs_of, runs_in
from reproduce.runner import ALL, TEACHERS, load_numbers, plan_configs, run, write_manifests

EXPERIMENTS = {e.name: e for e in experiments()}
NAMES = sorted(EXPERIMENTS)
ROOT = Path(__file__).resolve().parents[1]


def _env(root: Path):
    saved = {k: os.environ.get(k) for k in ("LOGIT_KD_RESULTS", "LOGIT_KD_DATA")}
    os.environ["LOGIT_KD_RESULTS"] = str(root / "results")
    os.environ["LOGIT_KD_DATA"] = str(root / "data")
    return saved


def _restore(saved):
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """`all` of every paper at smoke scale on one results root: {paper: (out dir, written files)}."""
    root = tmp_path_factory.mktemp("papers")
    saved = _env(root)
    try:
        done = {name: run(e, ALL, profile="smoke", quiet=True, jobs=1, log=lambda *a, **k: None)
                for name, e in EXPERIMENTS.items()}
        yield root / "results", done
    finally:
        _restore(saved)


@pytest.mark.parametrize("name", NAMES)
def test_plan_lists_its_teachers(name):
    """Every command of every profile plans each teacher its students need."""
    e = EXPERIMENTS[name]
    for profile in e.profiles:
        plan = e.plan(profile)
        for command in [TEACHERS, ALL, *[s.name for s in plan.sections]]:
            configs = plan_configs(plan, command)          # raises when a teacher is not planned
            ids = {c.run_id for c in configs}
            assert {t for c in configs for t in c.teachers} <= ids, (profile, command)
        assert plan_configs(plan, TEACHERS), profile       # every paper distils from something


@pytest.mark.parametrize("name", NAMES)
def test_dry_run_lists_every_profile_without_data(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(tmp_path / "results"))
    e = EXPERIMENTS[name]
    for profile in e.profiles:
        assert run(e, ALL, profile=profile, dry=True, data_root=tmp_path / "no-data") == []
        out = capsys.readouterr().out
        planned = plan_configs(e.plan(profile), ALL)
        assert f"{len(planned)} runs" in out and "# total:" in out, profile
        assert out.count("\n") >= len(planned) + 2
    assert not (tmp_path / "no-data").exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize("name", NAMES)
def test_smoke_run_renders_every_table_and_figure(name, smoke):
    root, done = smoke
    e = EXPERIMENTS[name]
    plan = e.plan("smoke")
    out = root / name / "smoke"
    names = {p.name for p in done[name]}
    for section in plan.sections:
        if section.name == "demo":
            continue
        for table in section.tables:
            assert {f"{table.name}.md", f"{table.name}.csv"} <= names, table.name
            assert (out / "manifest" / f"{table.name}.table.json").exists()
        for fig in section.figures:
            assert f"{fig.name}.png" in names and (out / f"{fig.name}.png").stat().st_size > 1000
    if plan.claims:
        assert "claims.md" in names
        # a claim that picks the best of a grid names it, on whichever side the grid is
        for written in ("claims.md", "reading.md"):
            text = (out / written).read_text()
            assert "{best}" not in text and " − :" not in text, written
    # every run trained, so no cell of a generic table is missing
    for section in plan.sections:
        for table in section.tables:
            if table.kind == "cells" and section.name != "demo":
                rows = [ln for ln in (out / f"{table.name}.md").read_text().splitlines() if ln.startswith("| ")][1:]
                assert rows and not any("missing" in ln for ln in rows), table.name


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_run_prints_missing_not_zero(name, smoke, tmp_path, monkeypatch):
    root, _ = smoke
    copy = tmp_path / "results"
    shutil.copytree(root, copy)
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(copy))
    e = EXPERIMENTS[name]
    plan = e.plan("smoke")
    table = next(t for s in plan.sections for t in s.tables if t.kind == "cells" and s.name != "demo")
    row = next(r for r in table.rows if any(isinstance(v, Cell) for v in r.values()))
    col, target = next((c, v) for c, v in row.items() if isinstance(v, Cell))
    for rid in target.run_ids():
        (copy / "runs" / rid / "summary.json").unlink()        # unfinished = absent
    run(e, "analyze", profile="smoke", quiet=True)
    md = (copy / name / "smoke" / f"{table.name}.md").read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith("| ") and str(next(iter(row.values()))) in ln)
    assert "missing" in line
    with open(copy / name / "smoke" / f"{table.name}.csv") as f:
        recs = list(csv.DictReader(f))
    assert any(r[f"{col}_n"] == "0" and r[f"{col}_mean"] == "" for r in recs)


@pytest.mark.parametrize("name", NAMES)
def test_every_paper_number_resolves_by_key(name, tmp_path):
    """Manifests of every profile resolve each PaperNumber key in reproduce/numbers/<paper>.csv."""
    e = EXPERIMENTS[name]
    numbers = load_numbers(name)
    for profile in e.profiles:
        plan = e.plan(profile)
        index = {c.run_id: c for s in plan.sections for c in configs_of(s)}
        write_manifests(plan, plan.sections, tmp_path / profile, index)      # raises on an unknown key
        for s in plan.sections:
            for t in s.tables:
                for r in t.rows:
                    for v in r.values():
                        if isinstance(v, PaperNumber) and v.key:
                            for key in filter(None, (v.key, v.minus)):
                                other, _, own = key.rpartition(":")
                                assert own in (load_numbers(other) if other else numbers)
        claims = json.loads((tmp_path / profile / "manifest" / "claims.json").read_text())
        assert all("{" not in c["paper"] for c in claims["claims"])


def test_run_ids_do_not_depend_on_the_experiment_tag():
    """One store: the same config asked for by two scripts is one run."""
    e = EXPERIMENTS["kl_vs_mse"]
    plan = e.plan("mini")
    c = plan.section("tau-sweep").tables[0].rows[1]["test top-1 % (ours)"].runs[0]
    from dataclasses import replace

    assert replace(c, experiment="demo").run_id == c.run_id


def test_analysis_imports_nothing_from_reproduce():
    code = ("import sys, analysis.render, analysis.runs, analysis.tables, analysis.metrics, analysis.__main__\n"
            + "".join(f"import analysis.{n}\n" for n in NAMES)
            + "bad = [m for m in sys.modules if m == 'reproduce' or m.startswith('reproduce.')]\n"
              "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_no_tracked_file_names_a_path_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    bad = []
    for f in files:
        if f.endswith((".png", ".pt")) or f == "tests/test_experiments.py":
            continue
        text = (ROOT / f).read_text(errors="ignore")
        if "/w" + "ork/" in text or "../sh" + "ared" in text or "sh" + "ared/mini-notes" in text \
                or "sh" + "ared/papers.md" in text:
            bad.append(f)
    assert not bad, bad


def test_tables_are_data_not_code():
    """Every cell of every declared table is a Cell, a PaperNumber or text; every run is a RunConfig."""
    for name, e in EXPERIMENTS.items():
        plan = e.plan("smoke")
        for s in plan.sections:
            for t in s.tables:
                assert isinstance(t, Table)
                for r in t.rows:
                    assert set(r) <= set(t.columns), (name, t.name)
                    assert all(isinstance(v, (Cell, PaperNumber, str)) for v in r.values()), (name, t.name)
            assert all(hasattr(c, "run_id") for c in runs_in([s.tables, s.figures]))


@pytest.mark.slow
def test_a_paper_script_runs_through_the_slurm_launcher_rehearsal(results, capsys):
    """`--launcher slurm --executor local`: submitit's local executor, the same code path as a cluster."""
    from reproduce.kl_vs_mse import main

    written = main(["sequential", "--profile", "smoke", "--quiet", "--launcher", "slurm", "--executor", "local"])
    assert any(p.name == "sequential.md" for p in written)
    out = capsys.readouterr().out
    assert "Slurm jobs" in out
    main(["sequential", "--profile", "smoke", "--status"])
    assert "5 done" in capsys.readouterr().out


def test_mini_dry_run_totals_the_distinct_runs_and_what_is_left(tmp_path, monkeypatch, capsys):
    """`make mini ARGS=--dry-run`'s last line: distinct runs and their CPU-minutes, then what the store
    has not finished; on an empty store the two agree (here every paper's mini profile is its smoke one)."""
    import dataclasses
    import re

    from reproduce import papers

    monkeypatch.setenv("LOGIT_KD_RESULTS", str(tmp_path / "results"))
    smoke = [dataclasses.replace(e, mini_profiles=("smoke",)) for e in experiments()]
    monkeypatch.setattr(papers, "experiments", lambda: smoke)
    assert papers.main(["mini", "--dry-run"]) == []
    last = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.fullmatch(r"# together: (\d+) distinct runs, about (\d+) CPU-minutes \(shared runs once\); "
                     r"not finished in this run store: (\d+) runs, about (\d+) CPU-minutes", last)
    assert m, last
    distinct, minutes, left, left_minutes = map(int, m.groups())
    planned = {c.run_id for e in smoke for c in plan_configs(e.plan("smoke"), ALL)}
    assert distinct == left == len(planned) > 0 and minutes == left_minutes
    assert not (tmp_path / "results").exists()


NESTED = [(n, p) for n in NAMES for p, prof in EXPERIMENTS[n].profiles.items()
          if prof.nested_teachers and p != "smoke"]


@pytest.mark.parametrize("name,profile", NESTED, ids=[f"{n}-{p}" for n, p in NESTED])
def test_every_distilled_run_of_a_mini_profile_distils_teachers_of_its_own_seed(name, profile):
    """Teachers nested in seeds at every mini profile (an ensemble member of student seed s has seed
    s + 1000 i, reproduce/logit_distortion.py), so every paired interval holds the teacher's variance."""
    configs = {c.run_id: c for c in plan_configs(EXPERIMENTS[name].plan(profile), ALL)}
    distilled = [c for c in configs.values() if c.teachers]
    assert distilled
    wrong = [(c.run_id, t) for c in distilled for t in c.teachers if configs[t].seed % 1000 != c.seed]
    assert not wrong, wrong[:3]
