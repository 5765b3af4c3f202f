"""Paper 1's script at smoke scale: every subcommand, the dry run, claims, the gradient limits,
the scheduler, the store migration."""
import csv
import math
import os
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from analysis.runs import load_runs
from analysis.tables import MISSING, Stat, compare, seed_stat
from engine.sweep import schedule
from reproduce.kl_vs_mse import EXPERIMENT, NAME, main
from reproduce.runner import plan_configs

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
        for command in ("teachers", *OUTPUTS):
            written[command] = [Path(p) for p in main([command, *SMOKE])]
        written["analyze"] = [Path(p) for p in main(["analyze", "--profile", "smoke"])]   # it trains nothing
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
    out = root / NAME / "smoke"
    for command, files in OUTPUTS.items():
        names = {p.name for p in written[command]}
        for name in files:
            assert name in names, (command, name)
            assert (out / name).stat().st_size > 0
        assert "claims.md" in names
    assert {p.name for p in written["analyze"]} >= {f for files in OUTPUTS.values() for f in files}
    assert written["teachers"] == []
    planned = {c.run_id for c in plan_configs(EXPERIMENT.plan("smoke"), "all")}
    df = load_runs(planned, root=root)
    assert planned <= set(df.index[df.finished])
    # every teacher lives in the one store, tagged
    teachers = plan_configs(EXPERIMENT.plan("smoke"), "teachers")
    assert teachers and all((root / "runs" / t.run_id / "summary.json").exists() for t in teachers)


def test_all_trains_nothing_new_once_done(results, capsys):
    main(["all", *SMOKE])
    assert "training" not in capsys.readouterr().out


def test_paper_dry_run_lists_the_grid_without_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(tmp_path / "results"))
    assert main(["all", "--profile", "paper", "--dry-run", "--data-root", str(tmp_path / "no-data")]) == []
    out = capsys.readouterr().out
    assert not (tmp_path / "no-data").exists() and not (tmp_path / "results").exists()
    for tau in ("0.5", "1", "3", "5", "20", "inf"):
        for alpha in ("0.1", "0.5", "0.9"):
            assert f"KL tau={tau} alpha={alpha}" in out
        assert f"KL tau={tau} " in out
    for model in ("wrn_28_4", "wrn_16_2", "wrn_16_4", "wrn_28_2"):
        assert model in out
    assert "sym0.6" in out and "asy0.4" in out and "GPU-h" in out and "68 runs" in out
    assert "# total:" in out


def test_claims_table_is_built(results):
    text = (results / NAME / "smoke" / "claims.md").read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert len(rows) >= 15
    allowed = {"supported", "contradicted", "equivalent", "inconclusive", "holds", "fails", "met", "not met",
               "chosen", "tie", "not chosen", "same order", "different order", "missing", "not run"}
    assert all(ln.rstrip(" |").rsplit("|", 1)[-1].strip() in allowed for ln in rows)
    assert "Gradient limits" in text and "75.76 vs 72.68 (supp.)" in text
    assert "74.52 vs 74.24 [unverified]" in text          # the numbers file marks the sequential one unverified


def test_gradient_check_errors_are_small(results):
    with open(results / NAME / "smoke" / "gradient_check.csv") as f:
        rows = list(csv.DictReader(f))
    err = {(r["check"][:5], r["tau"]): float(r["max abs error"]) for r in rows}
    rel = {(r["check"][:5], r["tau"]): float(r["relative error"]) for r in rows}
    assert rel[("τ → ∞", "10000")] < 1e-2 < rel[("τ → ∞", "10")]
    assert 5 < err[("τ → ∞", "1000")] / err[("τ → ∞", "10000")] < 20     # first order in 1/tau
    assert err[("τ = ∞", "inf")] < 1e-12
    assert err[("τ → 0", "0.0001")] < 1e-6


def test_paper_numbers_beside_ours(results):
    with open(results / NAME / "smoke" / "tau_sweep.csv") as f:
        rows = {r["row"]: r for r in csv.DictReader(f)}
    paper = "paper test top-1 % (CIFAR-100, WRN-28-4 -> WRN-16-2)"
    assert rows["student cnn1d_student: KL tau=20"][paper] == "75.76"
    assert rows["student cnn1d_student: CE"][paper] == "72.68"
    assert rows["student cnn1d_student: KL tau=0.5"][paper] == ""          # not in supp. Table 12
    assert rows["student cnn1d_student: LMSE"][f"{paper}_unverified"] == "True"


@pytest.mark.parametrize("profile", ["mini", "mini100"])
def test_teachers_are_nested_in_seeds_at_the_mini_profiles(profile):
    """Student seed s distils the teacher of seed s (the middle of seed s in the chain, itself
    taught by teacher seed s); one teacher per seed, model and noise setting, shared by every
    method; teacher rows, the CE student's agreement and the cluster contrast pair seed with seed."""
    plan = EXPERIMENT.plan(profile)
    assert plan.profile.nested_teachers and plan.seeds == plan.profile.seeds and len(plan.seeds) >= 5
    configs = {c.run_id: c for c in plan_configs(plan, "all")}
    distilled = [c for c in configs.values() if c.loss in ("kl", "mse")]
    assert distilled
    for c in distilled:
        (t,) = c.teachers
        assert configs[t].seed == c.seed, (c.run_id, t)
        chain = configs[t]
        while chain.teachers:                      # a middle: its own teacher is of the same seed
            chain = configs[chain.teachers[0]]
            assert chain.seed == c.seed
    teachers = list({t: configs[t] for c in distilled for t in c.teachers if not configs[t].teachers}.values())
    per_setting = {}
    for t in teachers:
        per_setting.setdefault((t.model, t.label_noise.tag), []).append(t.seed)
    assert per_setting and all(sorted(seeds) == sorted(plan.seeds) for seeds in per_setting.values()), per_setting
    big = {t.seed: t.run_id for t in teachers if t.model == configs[distilled[0].teachers[0]].model
           and t.label_noise.tag == "clean"}
    sweep = plan.section("tau-sweep")
    assert set(big.values()) <= {r.run_id for r in sweep.runs}
    teacher_row = sweep.tables[0].rows[0]["test top-1 % (ours)"]
    assert sorted((r.seed, r.run_id) for r in teacher_row.runs) == sorted(big.items())
    ce = plan.section("logit-matching").tables[0].rows[0]
    against = next(v for k, v in ce.items() if k.startswith("agreement")).against
    assert {s: t.run_id for s, t in against.items()} == big
    spread = next(c for c in plan.claims if c.text.startswith("LMSE keeps the teacher's cluster structure"))
    assert sorted(r.seed for r in spread.b.runs) == sorted(r.seed for r in spread.a.runs) == sorted(plan.seeds)


def test_paper_profile_keeps_one_teacher():
    plan = EXPERIMENT.plan("paper")
    assert not plan.profile.nested_teachers
    configs = {c.run_id: c for c in plan_configs(plan, "all")}
    used = {}
    for c in configs.values():
        for t in c.teachers:
            used.setdefault((configs[t].model, configs[t].loss, configs[t].label_noise.tag), set()).add(t)
    assert used and all(len(ids) == 1 for ids in used.values()), used
    assert {configs[t].seed for ids in used.values() for t in ids} == {plan.profile.seeds[0]}
    ce = plan.section("logit-matching").tables[0].rows[0]
    against = next(v for k, v in ce.items() if k.startswith("agreement")).against
    assert against.run_id in {r.run_id for r in plan.section("logit-matching").runs}


def test_schedule_dedupes_and_orders_by_teacher_depth():
    plan = EXPERIMENT.plan("smoke")
    configs = plan_configs(plan, "sequential") + plan_configs(plan, "tau-sweep") + plan_configs(plan, "sequential")
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


def test_labels_come_from_the_losses():
    from losses import loss_label

    assert loss_label("kl", {"tau": 20.0}) == "KL tau=20"
    assert loss_label("kl", {"tau": math.inf, "alpha": 0.5}) == "KL tau=inf alpha=0.5"
    assert loss_label("mse") == "LMSE" and loss_label("ce") == "CE"
    assert loss_label("dkd", {"beta": 6.0}) == "DKD beta=6"
    assert loss_label("tald", {"base": "kl", "tau": 4.0, "scale": 0.5}) == "TALD scale=0.5 on KL tau=4"


def test_store_migrate_moves_old_layout_and_drops_duplicates(results, tmp_path, monkeypatch, capsys):
    import shutil

    from reproduce.store import main as store_main

    root = tmp_path / "old"
    run_dirs = sorted((results / "runs").iterdir())[:3]
    for i, d in enumerate(run_dirs):      # the old per-experiment layout, one run twice
        shutil.copytree(d, root / ("teachers" if i == 0 else NAME) / "runs" / d.name)
    shutil.copytree(run_dirs[1], root / "demo" / "runs" / run_dirs[1].name)
    store_main(["migrate", "--root", str(root)])
    assert sorted(p.name for p in (root / "runs").iterdir()) == sorted(d.name for d in run_dirs)
    assert [p for p in root.glob("*/runs/*") if p.parent.parent.name != "runs"] == []
    assert not (root / "teachers" / "runs").exists()
    assert "1 duplicate(s) removed" in capsys.readouterr().out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), classes=st.integers(3, 100), scale=st.floats(0.5, 30.0))
def test_small_tau_gradient_is_label_matching_exactly_where_the_argmax_is_unique(seed, classes, scale):
    """The premise of the gradient check's near-tie rule: at τ = 1e-4 the 1/τ-rescaled KL gradient is
    onehot(argmax z_s) − onehot(argmax z_t) to 1e-6 on every sample whose top-2 gaps exceed 20τ,
    while a sample with a gap of τ is still far from it (so leaving near-ties out is needed, not lenient)."""
    import torch
    from analysis.kl_vs_mse import NEAR_TIE, top2_gap
    from losses import build_loss

    g = torch.Generator().manual_seed(seed)
    zs, zt = (torch.randn(64, classes, generator=g, dtype=torch.float64) * scale for _ in range(2))
    tau = 1e-4
    zs[0, 1] = zs[0].max() + 0.5 * tau                      # a planted near-tie in sample 0
    zs[0, 0] = zs[0, 1] - tau
    x = zs.clone().requires_grad_(True)
    loss = build_loss("kl", tau=tau, rescale_small_tau=True)(x, zt, zt.argmax(1))
    grad = torch.autograd.grad(loss, x)[0] * len(zs)
    one_hot = torch.nn.functional.one_hot
    limit = one_hot(zs.argmax(1), classes).double() - one_hot(zt.argmax(1), classes).double()
    err = (grad - limit).abs().max(1).values
    unique = torch.minimum(top2_gap(zs), top2_gap(zt)) > NEAR_TIE * tau
    assert not unique[0] and err[0] > 0.1
    assert (err[unique] < 1e-6).all()
