"""Shipped teachers (engine/shipped.py): the demo's seed-0 teachers are in models/shipped/ with
checksums, and copying one into the store is whole, checked and never overwrites a run."""
import shutil

import pytest

from common import UserError
from engine import RunDir, make_config, teacher_config, train
from engine.rundir import sha256_file as sha256
from engine.shipped import SHIPPED, SUMS, ship, shipped_ids, unpack_shipped, verify
from reproduce.papers import experiments
from reproduce.runner import DEMO, prepare

DATA = {"num_train": 192, "num_test": 96, "num_classes": 4, "shape": [1, 24]}


def _teacher():
    return teacher_config("synthetic", "cnn1d_teacher", dataset_options=DATA)


def _student(teacher):
    return make_config("shipped", "synthetic", "cnn1d_student", loss="kl", teachers=[teacher.run_id], dataset_options=DATA,
                       model_options={"length": 24})


def test_every_teacher_the_demo_trains_is_shipped_and_whole():
    """A config change that moves a demo teacher's run id fails here: re-ship it (reproduce.store ship)."""
    plans = [prepare(e, DEMO, None, (0,)) for e in experiments() if e.demo_section is not None]
    teachers = {t for _, cs in plans for c in cs for t in c.teachers}
    assert teachers and teachers <= set(shipped_ids())
    for run_id in shipped_ids():
        verify(SHIPPED / run_id)


def test_ship_then_unpack_gives_the_same_finished_run(results, tmp_path):
    cfg = _teacher()
    trained = train(cfg, quiet=True)
    shipped = ship(cfg.run_id, out=tmp_path / "shipped")
    digest = sha256(trained.path / "model.pt")
    shutil.rmtree(trained.path)
    assert unpack_shipped([cfg], log=lambda *a: None, root=tmp_path / "shipped") == []    # nothing distils it
    assert unpack_shipped([cfg, _student(cfg)], log=lambda *a: None, root=tmp_path / "shipped") == [cfg.run_id]
    rd = RunDir(cfg)
    assert rd.finished and sha256(rd.path / "model.pt") == digest and not (rd.path / SUMS).exists()
    rd.verify(deep=True)
    assert unpack_shipped([cfg, _student(cfg)], log=lambda *a: None, root=tmp_path / "shipped") == []  # there
    assert (shipped / SUMS).exists()


def test_a_damaged_copy_is_one_line_and_writes_nothing(results, tmp_path):
    cfg = _teacher()
    trained = train(cfg, quiet=True)
    ship(cfg.run_id, out=tmp_path / "shipped")
    shutil.rmtree(trained.path)
    (tmp_path / "shipped" / cfg.run_id / "model.pt").write_bytes(b"not weights")
    with pytest.raises(UserError, match="model.pt is missing or damaged"):
        unpack_shipped([cfg, _student(cfg)], log=lambda *a: None, root=tmp_path / "shipped")
    assert RunDir(cfg).status() == "absent" and not any(trained.path.parent.glob(f"*{cfg.run_id}*"))


def test_a_run_in_the_store_is_never_replaced(results, tmp_path):
    cfg = _teacher()
    train(cfg, quiet=True)
    ship(cfg.run_id, out=tmp_path / "shipped")
    with pytest.raises(UserError, match="exists"):
        ship(cfg.run_id, out=tmp_path / "shipped")
    (RunDir(cfg).path / "summary.json").unlink()        # a run the store holds in part
    assert unpack_shipped([cfg, _student(cfg)], log=lambda *a: None, root=tmp_path / "shipped") == []
    assert not RunDir(cfg).finished
