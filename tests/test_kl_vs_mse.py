"""Paper 1's script at smoke scale: every subcommand, the dry run, missing runs, claims, limits."""
import csv
import math
import os
import shutil
from pathlib import Path

import pytest

from analysis.runs import load_runs
from analysis.tables import MISSING, Stat, compare, seed_stat
from reproduce.kl_vs_mse import EXPERIMENT, builder_for, demo_headline, main, schedule

SMOKE = ["--profile", "smoke", "--quiet", "--jobs", "1"]
OUTPUTS = {
    "tau-sweep": ["tau_sweep.md", "tau_sweep.csv", "tau_sweep.png", "tau_alpha_grid.md", "students.md"],
    "logit-matching": ["logit_matching.md", "logit_matching.csv", "gradient_check.md", "gradient_check.csv"],
    "features": ["features.md", "features.csv", "features.png"],
    "label-noise": ["label_noise.md", "label_noise.csv", "label_noise.png"],
    "sequential": ["sequential.md", "sequential.csv"],
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Every subcommand once, in order, on one results root; returns (root, files written per command)."""
    root = tmp_path_factory.mktemp("klmse")
    saved = {k: os.environ.get(k) for k in ("LOGIT_KD_RESULTS", "LOGIT_KD_DATA")}
    os.environ["LOGIT_KD_RESULTS"] = str(root / "results")
    os.environ["LOGIT_KD_DATA"] = str(root / "data")
    try:
        written = {}
        for command in ("teachers", "tau-sweep", "logit-matching", "features", "label-noise", "sequential",
                        "analyze"):
            written[command] = [Path(p) for p in main([command, *SMOKE])]
        yield root / "results", written
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def results(smoke, monkeypatch):
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(smoke[0]))
    return smoke[0]


def test_every_subcommand_produces_its_outputs(smoke):
    root, written = smoke
    out = root / EXPERIMENT / "smoke"
    for command, files in OUTPUTS.items():
        names = {p.name for p in written[command]}
        for name in files:
            assert name in names, (command, name)
            assert (out / name).stat().st_size > 0
        assert "claims.md" in names
    assert {p.name for p in written["analyze"]} >= {f for files in OUTPUTS.values() for f in files}
    assert written["teachers"] == []
    # every planned run trained and finished, teachers in the teacher store
    b = builder_for("smoke")
    df = load_runs(EXPERIMENT, root=root)
    planned = {c.run_id for e in OUTPUTS for c in b.runs(e)}
    assert planned <= set(df.index[df.finished])
    # the sweep's table holds numbers, no 'missing'
    table_rows = [ln for ln in (out / "tau_sweep.md").read_text().splitlines() if ln.startswith("| ")]
    assert len(table_rows) > 5 and not any(MISSING in ln for ln in table_rows)


def test_all_trains_nothing_new_once_done(results, capsys):
    main(["all", *SMOKE])
    assert "training" not in capsys.readouterr().out


def test_paper_dry_run_lists_the_grid_without_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(tmp_path / "results"))
    assert main(["all", "--profile", "paper", "--dry-run", "--data-root", str(tmp_path / "no-data")]) == []
    out = capsys.readouterr().out
    assert not (tmp_path / "no-data").exists() and not (tmp_path / "results").exists()
    text = out
    for tau in ("0.5", "1", "3", "5", "20", "inf"):
        for alpha in ("0.1", "0.5", "0.9"):
            assert f"KL tau={tau} alpha={alpha}" in text
        assert f"KL tau={tau} " in text
    for model in ("wrn_28_4", "wrn_16_2", "wrn_16_4", "wrn_28_2"):
        assert model in text
    assert "sym0.6" in text and "asy0.4" in text and "GPU-h" in text
    assert "# total:" in out


def test_missing_run_shows_missing_not_zero(results, tmp_path, monkeypatch):
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(copy))
    b = builder_for("smoke")
    lmse = b.sweep_rows()["LMSE"][0]
    (copy / EXPERIMENT / "runs" / lmse.run_id / "summary.json").unlink()    # unfinished = absent
    main(["tau-sweep", *SMOKE, "--dry-run"])                                 # lists it as started, trains nothing
    from analysis import kl_vs_mse as analysis

    analysis.build(b, ["tau-sweep"], copy / "out")
    md = (copy / "out" / "tau_sweep.md").read_text()
    row = next(ln for ln in md.splitlines() if "LMSE" in ln and ln.startswith("| student"))
    assert "missing" in row and " 0.00" not in row
    with open(copy / "out" / "tau_sweep.csv") as f:
        rec = next(r for r in csv.DictReader(f) if r["loss"] == "mse")
    assert rec["test top-1 % (ours)_mean"] == "" and rec["test top-1 % (ours)_n"] == "0"
    claims = (copy / "out" / "claims.md").read_text()
    assert "LMSE: missing" in claims


def test_claims_table_is_built(results):
    text = (results / EXPERIMENT / "smoke" / "claims.md").read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert len(rows) >= 15
    allowed = {"yes", "no", "inconclusive", "missing", "not run"}
    assert all(ln.rstrip(" |").rsplit("|", 1)[-1].strip() in allowed for ln in rows)
    assert "Gradient limits" in text


def test_gradient_check_errors_are_small(results):
    with open(results / EXPERIMENT / "smoke" / "gradient_check.csv") as f:
        rows = list(csv.DictReader(f))
    err = {(r["check"][:5], r["tau"]): float(r["max abs error"]) for r in rows}
    rel = {(r["check"][:5], r["tau"]): float(r["relative error"]) for r in rows}
    assert rel[("τ → ∞", "10000")] < 1e-2 < rel[("τ → ∞", "10")]
    assert 5 < err[("τ → ∞", "1000")] / err[("τ → ∞", "10000")] < 20     # first order in 1/tau
    assert err[("τ = ∞", "inf")] < 1e-12
    assert err[("τ → 0", "0.0001")] < 1e-6


def test_demo_headline_writes_table_and_figure(results, tmp_path):
    paths = demo_headline(profile="smoke", seeds=(0,), out_dir=tmp_path / "demo", quiet=True, jobs=1)
    assert {p.name for p in paths} == {"kl_vs_mse_tau_sweep.md", "kl_vs_mse_tau_sweep.csv", "kl_vs_mse_tau_sweep.png"}
    assert "KL tau=20" in (tmp_path / "demo" / "kl_vs_mse_tau_sweep.md").read_text()


def test_schedule_dedupes_and_orders_by_teacher_depth():
    b = builder_for("smoke")
    configs = b.runs("sequential") + b.runs("tau-sweep") + b.runs("sequential")
    stages = schedule(configs)
    ids = [c.run_id for s in stages for g in s for c in g]
    assert len(ids) == len(set(ids)) == len({c.run_id for c in configs})
    depth = {c.run_id: i for i, s in enumerate(stages) for g in s for c in g}
    for s in stages:
        for g in s:
            assert len({(c.seed, c.teachers, c.label_noise) for c in g}) == 1
            for c in g:
                assert all(depth.get(t, -1) < depth[c.run_id] for t in c.teachers)
    assert len(stages) == 3     # teachers, students (and middles), students of middles


def test_stat_and_compare_rules():
    import pandas as pd

    df = pd.DataFrame([{"run_id": "a", "finished": True, "m": 1.0}, {"run_id": "b", "finished": True, "m": 3.0},
                       {"run_id": "c", "finished": False, "m": math.nan}]).set_index("run_id", drop=False)
    s = seed_stat(df, ["a", "b", "c", "d"], "m")
    assert (s.n, s.expected, s.mean) == (2, 4, 2.0) and "2/4 seeds" in str(s)
    assert str(seed_stat(df, ["c", "d"], "m")) == MISSING
    hi, lo = Stat(10.0, 0.1, 3, 3), Stat(9.0, 0.1, 3, 3)
    assert compare(hi, lo)[0] == "yes" and compare(lo, hi)[0] == "no"
    assert compare(Stat(9.05, 0.1, 3, 3), lo)[0] == "inconclusive"
    assert compare(Stat(10.0, math.nan, 1, 1), Stat(9.0, math.nan, 1, 1))[0] == "inconclusive"
    assert compare(hi, seed_stat(df, ["d"], "m"))[0] == MISSING


@pytest.mark.parametrize("experiment", ["teachers", "tau-sweep", "logit-matching", "features", "label-noise",
                                        "sequential"])
def test_each_experiment_plans_its_own_teachers(experiment):
    """A subcommand run alone on an empty results folder must train every teacher it needs."""
    configs = builder_for("smoke").runs(experiment)
    planned = {c.run_id for c in configs}
    needed = {t for c in configs for t in c.teachers}
    assert needed <= planned, sorted(needed - planned)
