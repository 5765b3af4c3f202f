"""TensorBoard scalars per epoch beside metrics.jsonl, optional W&B offline: neither changes a run."""
import sys
import types

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from engine import make_config, teacher_config, train
from reproduce.kl_vs_mse import main as paper_cli
from reproduce.train import main as train_cli
from run_helpers import killed_at_step

DATA = {"num_train": 192, "num_test": 96, "num_classes": 4, "shape": [1, 24]}
STEPS = 3           # 192 samples, batch 64 (the smoke recipe)

pytestmark = pytest.mark.usefixtures("results")    # conftest: a temporary results/data folder


def teacher_cfg(epochs=2):
    return teacher_config("synthetic", "cnn1d_teacher", dataset_options=DATA, recipe_overrides={"epochs": epochs})


def student_cfg(teacher_id, epochs=3):
    return make_config("tb", "synthetic", "cnn1d_student", loss="kl", loss_hparams={"tau": 4.0, "alpha": 0.9},
                       teachers=[teacher_id], dataset_options=DATA, model_options={"length": 24},
                       recipe_overrides={"epochs": epochs, "warmup_epochs": 2, "ce_weight": 0.5})


def events(run_path):
    acc = EventAccumulator(str(run_path / "tb"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_teacher_and_student_write_the_expected_tags_once_per_epoch():
    t = train(teacher_cfg(), quiet=True)
    tags = events(t.path)
    assert {"train/top1", "train/loss", "train/lr", "test/top1", "test/loss", "loss/ce"} <= set(tags)
    rows = t.metrics()
    assert tags["train/top1"] == [(r["epoch"], pytest.approx(r["train_top1"])) for r in rows]
    assert tags["test/top1"] == [(r["epoch"], pytest.approx(r["test_top1"])) for r in rows]
    # a teacher's only term is its CE, whose epoch mean is the logged training loss
    assert [v for _, v in tags["loss/ce"]] == pytest.approx([r["train_loss"] for r in rows])

    s = train(student_cfg(t.config.run_id), quiet=True)
    tags = events(s.path)
    assert {"teacher/agree_top1", "loss/kd", "loss/ce", "loss/distill", "loss/label_ce", "loss/distill_weight"} <= set(tags)
    assert [step for step, _ in tags["train/top1"]] == [1, 2, 3]
    assert [v for _, v in tags["loss/distill_weight"]] == pytest.approx([0.5, 1.0, 1.0])   # warm-up of 2 epochs
    rows = s.metrics()
    assert [v for _, v in tags["teacher/agree_top1"]] == pytest.approx([r["agree_top1"] for r in rows])
    # the objective's terms add up to the logged loss: ramp * distill + 0.5 * label CE
    for (_, d), (_, ce), (_, w), r in zip(tags["loss/distill"], tags["loss/label_ce"], tags["loss/distill_weight"], rows):
        assert w * d + 0.5 * ce == pytest.approx(r["train_loss"], rel=1e-5)


def test_tensorboard_changes_no_run_id_metric_or_weight(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGIT_KD_TENSORBOARD", "0")
    t_off = train(teacher_cfg(), quiet=True)
    s_off = train(student_cfg(t_off.config.run_id), quiet=True)
    assert not (t_off.path / "tb").exists() and not (s_off.path / "tb").exists()
    monkeypatch.setenv("LOGIT_KD_TENSORBOARD", "1")
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(tmp_path / "on"))
    t_on = train(teacher_cfg(), quiet=True)
    s_on = train(student_cfg(t_on.config.run_id), quiet=True)
    assert (t_on.path / "tb").is_dir() and (s_on.path / "tb").is_dir()
    for off, on in ((t_off, t_on), (s_off, s_on)):
        assert off.path.name == on.path.name                                   # the same run id
        drop = lambda rows: [{k: v for k, v in r.items() if k != "train_time_s"} for r in rows]  # noqa: E731
        assert drop(off.metrics()) == drop(on.metrics())                         # bit-identical metrics
        assert (off.path / "model.sha256").read_text() == (on.path / "model.sha256").read_text()


def test_a_resumed_run_logs_each_epoch_once(monkeypatch):
    t = train(teacher_cfg(), quiet=True)
    cfg = student_cfg(t.config.run_id, epochs=4)
    killed_at_step(cfg, monkeypatch, 2 * STEPS + 2)    # epoch 3, step 2: epoch 2 is checkpointed and logged
    rd = train(cfg, quiet=True)
    assert len(list((rd.path / "tb").glob("events.out.tfevents.*"))) == 2      # a new file for the resumed part
    tags = events(rd.path)
    assert [step for step, _ in tags["train/top1"]] == [1, 2, 3, 4]
    assert [v for _, v in tags["train/top1"]] == pytest.approx([r["train_top1"] for r in rd.metrics()])


@pytest.mark.parametrize("cli", [
    lambda: train_cli(["--dataset", "synthetic", "--model", "cnn1d_teacher", "--wandb", "--quiet"]),
    lambda: paper_cli(["teachers", "--profile", "smoke", "--wandb", "--quiet"]),
], ids=["train", "paper script"])
def test_wandb_without_the_package_is_one_line(monkeypatch, capsys, results, cli):
    monkeypatch.setitem(sys.modules, "wandb", None)       # import wandb raises ImportError
    with pytest.raises(SystemExit) as e:
        cli()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert "pip install wandb" in err
    assert not (results / "runs").exists()                # nothing was written


def test_wandb_logs_the_same_scalars_offline(monkeypatch):
    calls = []

    class FakeRun:
        def log(self, values, step):
            calls.append(("log", step, values))

        def finish(self):
            calls.append(("finish",))

    def init(**kw):
        calls.append(("init", kw))
        return FakeRun()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    rd = train(teacher_cfg(), quiet=True, wandb=True)
    assert calls[0][0] == "init" and calls[0][1]["mode"] == "offline" and calls[0][1]["id"] == rd.path.name
    logged = [c for c in calls if c[0] == "log"]
    assert [c[1] for c in logged] == [1, 2] and calls[-1] == ("finish",)
    assert logged[-1][2]["test/top1"] == pytest.approx(rd.metrics()[-1]["test_top1"])
    assert torch.load(rd.model_file) is not None
