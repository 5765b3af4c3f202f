"""The sweep runner (engine/sweep.py, reproduce/sweep.py): teachers first, skips, failures per group."""
import dataclasses
import json

import pytest

from engine import RunDir, make_config, teacher_config
from engine.sweep import load_configs, run_parallel, save_configs, schedule
from reproduce.sweep import main as sweep_cli

DATA = {"num_train": 96, "num_test": 32, "num_classes": 4, "shape": [1, 24]}


pytestmark = pytest.mark.usefixtures("results")    # conftest: a temporary results/data folder


def plan():
    epochs = {"epochs": 1}
    good = teacher_config("synthetic", "cnn1d_teacher", dataset_options=DATA, recipe_overrides=epochs)
    bad = teacher_config("synthetic", "cnn1d_teacher", seed=1, dataset_options=DATA, recipe_overrides=epochs,
                         model_options={"no_such_option": 1})           # fails when its model is built
    student = lambda t, seed, tau: make_config(  # noqa: E731
        "sweep", "synthetic", "cnn1d_student", loss="kl", loss_hparams={"tau": tau}, teachers=[t.run_id],
        seed=seed, dataset_options=DATA, model_options={"length": 24}, recipe_overrides=epochs)
    students = [student(good, 0, 1.0), student(good, 0, 4.0), student(good, 1, 4.0)]
    orphan = student(bad, 0, 4.0)
    return good, bad, students, orphan


def test_schedule_puts_teachers_first_and_groups_shared_streams():
    good, bad, students, orphan = plan()
    stages = schedule([*students, orphan, good, bad, students[0]])      # any order, a duplicate
    assert [sorted(c.run_id for g in s for c in g) for s in stages] == [
        sorted([good.run_id, bad.run_id]), sorted(c.run_id for c in [*students, orphan])]
    sizes = sorted(len(g) for g in stages[1])
    assert sizes == [1, 1, 2]                 # seed-0 students of the good teacher train together


def test_run_parallel_reports_failures_and_skips_finished_runs(tmp_path):
    good, bad, students, orphan = plan()
    # a third member of the seed-0 group whose loss becomes NaN (lr 1e12), and students of two members
    wild = dataclasses.replace(students[0], loss_hparams={"tau": 2.0}, recipe={**students[0].recipe, "lr": 1e12})
    of_healthy, of_wild = (dataclasses.replace(students[2], teachers=(c.run_id,)) for c in (students[0], wild))
    logs = []
    first = run_parallel([*students, orphan, good, bad, wild, of_healthy, of_wild], jobs=2, log=logs.append)
    status = {rid: r["status"] for r in first for rid in r["runs"]}
    assert status[good.run_id] == "ok" and status[students[2].run_id] == "ok"
    assert status[bad.run_id] == "failed" and status[orphan.run_id] == "blocked"
    assert status[wild.run_id] == status[students[0].run_id] == "failed"           # the group of the wild run
    assert status[of_healthy.run_id] == "ok" and status[of_wild.run_id] == "blocked"
    failures = {r["runs"][0]: r["error"] for r in first if r["status"] in ("failed", "blocked")}
    assert all("\n" not in e for e in failures.values())
    assert "no_such_option" in failures[bad.run_id] and "did not finish" in failures[orphan.run_id]
    (group_error,) = [r["error"] for r in first if wild.run_id in r["runs"]]
    assert f"run {wild.run_id} diverged" in group_error
    assert all(RunDir(c).finished for c in [good, *students, of_healthy]) and not RunDir(orphan).started
    assert RunDir(wild).status() == "failed" and not RunDir(of_wild).path.exists()
    assert {r["worker"] for r in first if r["status"] == "ok"} == {"cpu"}

    # again from a JSON file through the CLI: finished groups are skipped, the failure repeats
    path = save_configs([good, *students], tmp_path / "configs.json")
    assert [c.run_id for c in load_configs(path)] == [c.run_id for c in [good, *students]]
    stamp = RunDir(students[0]).summary_file.stat().st_mtime_ns
    again = sweep_cli([str(path), "--jobs", "2"])
    assert {r["status"] for r in again} == {"done"}
    assert RunDir(students[0]).summary_file.stat().st_mtime_ns == stamp
    assert json.loads(path.read_text())[0]["model"] == "cnn1d_teacher"


def test_every_run_config_field_loads_from_a_sweep_file(tmp_path):
    """The sweep file's schema knows every RunConfig field (a new field must not make saved configs unreadable)."""
    import dataclasses

    from engine.config import RunConfig
    from engine.sweep import FIELDS

    assert {f.name for f in dataclasses.fields(RunConfig)} == set(FIELDS)
