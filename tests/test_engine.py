"""The engine at smoke scale: teacher and student runs, run directories, groups, resume, errors."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from common import UserError
from engine import LabelNoise, RunDir, TrainingDiverged, make_config, teacher_config, train, train_group
from losses import LOSSES
from reproduce.train import main as train_cli

DATA = {"num_train": 192, "num_test": 96, "num_classes": 4, "shape": [1, 24]}
STUDENT = "cnn1d_student"
TEACHER = "cnn1d_teacher"


pytestmark = pytest.mark.usefixtures("results")    # conftest: a temporary results/data folder


def small(model=STUDENT, **kw):
    return {"dataset": "synthetic", "model": model, "dataset_options": DATA,
            "model_options": {"length": 24}, "recipe": "smoke", **kw}


def teacher(seed=0, epochs=2):
    cfg = teacher_config("synthetic", TEACHER, seed=seed, recipe="smoke", recipe_overrides={"epochs": epochs},
                         dataset_options=DATA)
    return train(cfg, quiet=True)


def comparable(rows):
    return [{k: v for k, v in r.items() if k != "train_time_s"} for r in rows]


def test_teacher_run_directory_holds_everything(results):
    rd = teacher()
    for name in ("config.json", "env.json", "metrics.jsonl", "summary.json", "checkpoint.pt", "model.pt",
                 "model.sha256", "outputs.pt", "log.txt"):
        assert (rd.path / name).exists(), name
    env = json.loads((rd.path / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["seed"] == 0
    rows = rd.metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    summary = rd.summary()
    assert summary["final"]["test_top1"] == rows[-1]["test_top1"]
    assert summary["best"]["test_top1"] == max(r["test_top1"] for r in rows)
    assert rd.path.parent == results / "runs"          # the one run store
    assert json.loads(rd.config_file.read_text())["experiment"] == "teachers"   # the tag


def test_finished_run_is_skipped_and_force_redoes_it():
    rd = teacher()
    stamp = rd.summary_file.stat().st_mtime_ns
    teacher()
    assert rd.summary_file.stat().st_mtime_ns == stamp
    train(rd.config, quiet=True, force=True)
    assert rd.summary_file.stat().st_mtime_ns != stamp


def test_student_records_teacher_and_agreement():
    t = teacher()
    cfg = make_config("exp", **small(), loss="kl", loss_hparams={"tau": 4.0}, teachers=[t.config.run_id])
    rd = train(cfg, quiet=True)
    summary = rd.summary()
    assert summary["teachers"][0]["run_id"] == t.config.run_id
    assert summary["teachers"][0]["sha256"] == (t.path / "model.sha256").read_text().strip()
    final = summary["final"]
    for key in ("agree_top1", "kl_teacher_student", "logit_dist", "mean_shift", "logit_norm", "feature_norm"):
        assert key in final and final[key] == final[key]   # present and not NaN
    outputs = torch.load(rd.path / "outputs.pt")
    assert outputs["logits"].shape == (DATA["num_test"], DATA["num_classes"])


def test_group_equals_separate_runs(tmp_path, monkeypatch):
    t = teacher()
    configs = [make_config("exp", **small(), loss=name, loss_hparams=hp, teachers=[t.config.run_id])
               for name, hp in [("kl", {"tau": 1.0}), ("mse", {}), ("tald", {"base": "kl", "tau": 4.0, "scale": 0.5})]]
    together = [rd.metrics() for rd in train_group(configs, quiet=True)]
    # Same configs again, each alone, in a second results tree (the teacher copied over).
    other = tmp_path / "other"
    import shutil
    shutil.copytree(t.path, other / "runs" / t.path.name)
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(other))
    alone = [train(c, quiet=True).metrics() for c in configs]
    assert [comparable(r) for r in together] == [comparable(r) for r in alone]


def test_ensemble_of_teachers_mean_and_sum():
    runs = [teacher(seed=s).config.run_id for s in (0, 1)]
    for how in ("mean", "sum"):
        cfg = make_config("exp", **small(), loss="mse", teachers=runs, ensemble=how)
        assert train(cfg, quiet=True).summary()["final"]["test_top1"] >= 0
    with pytest.raises(UserError):
        make_config("exp", **small(), loss="mse", teachers=runs, ensemble="median")


def test_nan_loss_stops_with_epoch_and_step(monkeypatch):
    t = teacher()

    class NanLater:
        uses_teacher = True
        calls = 0

        def __call__(self, zs, zt, y):
            NanLater.calls += 1
            bad = NanLater.calls > 4          # epoch 2 (3 steps per epoch), step 2
            return (zs - zt).pow(2).mean() * (float("nan") if bad else 1.0)

        def set_progress(self, p): pass
        def observe_teacher(self, zt, y): pass
        def end_epoch(self): pass
        def state_dict(self): return {}
        def load_state_dict(self, d): pass

    monkeypatch.setitem(LOSSES._factories, "nan_later", NanLater)
    cfg = make_config("exp", **small(), loss="nan_later", teachers=[t.config.run_id])
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 2"):
        train(cfg, quiet=True)
    rd = RunDir(cfg)
    assert torch.load(rd.checkpoint_file, weights_only=False)["epoch"] == 1
    assert not rd.finished


def test_corrupt_teacher_weights_are_refused():
    t = teacher()
    t.model_file.write_bytes(t.model_file.read_bytes()[:-10] + b"0123456789")
    cfg = make_config("exp", **small(), loss="kl", teachers=[t.config.run_id])
    with pytest.raises(UserError, match="checksum"):
        train(cfg, quiet=True)


def test_teacher_with_wrong_recorded_accuracy_is_refused():
    t = teacher()
    summary = json.loads(t.summary_file.read_text())
    summary["final"]["test_top1"] += 30.0
    t.summary_file.write_text(json.dumps(summary))
    cfg = make_config("exp", **small(), loss="kl", teachers=[t.config.run_id])
    with pytest.raises(UserError, match="refusing"):
        train(cfg, quiet=True)


# ------------------------------------------------------------------ the CLI
CLI_BASE = ["--dataset", "synthetic", "--dataset-option", "num_train=192", "--dataset-option", "num_test=96",
            "--dataset-option", "num_classes=4", "--dataset-option", "shape=[1, 24]",
            "--model-option", "length=24", "--recipe", "smoke", "--quiet"]


def cli_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exc:
        train_cli(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    return err


def test_cli_trains_teacher_then_student(capsys):
    rd = train_cli(CLI_BASE + ["--model", STUDENT, "--teacher", TEACHER, "--loss", "kl", "--tau", "4"])
    out = capsys.readouterr().out
    assert f"run directory: {rd.path}" in out and "training teacher" in out
    assert rd.finished


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet999"], "unknown model"),
    (["--model", STUDENT, "--teacher", TEACHER, "--loss", "klx"], "unknown loss"),
    (["--model", STUDENT, "--recipe", "nope"], "unknown recipe"),
    (["--model", STUDENT, "--label-noise", "symmetric", "--noise-rate", "1.5"], "rate"),
    (["--model", STUDENT, "--epochs", "-1"], "epochs"),
    (["--model", STUDENT, "--lr", "-0.1"], "lr"),
    (["--model", STUDENT, "--teacher", TEACHER, "--loss", "kl", "--tau", "-1"], "tau"),
    (["--model", STUDENT, "--loss", "kl"], "needs a teacher"),
])
def test_cli_bad_input_is_one_line(capsys, argv, message):
    assert message in cli_error(capsys, CLI_BASE + argv)


def test_cli_unknown_dataset_and_missing_data(capsys, tmp_path):
    assert "unknown dataset" in cli_error(capsys, ["--dataset", "cifar1000", "--model", STUDENT])
    err = cli_error(capsys, ["--dataset", "cifar100", "--data-root", str(tmp_path / "nothing"), "--model", "resnet8"])
    assert str(tmp_path / "nothing") in err


def test_cli_teacher_student_class_mismatch(capsys):
    t = teacher()
    argv = [a.replace("num_classes=4", "num_classes=5") for a in CLI_BASE]
    err = cli_error(capsys, argv + ["--model", STUDENT, "--teacher-run", t.config.run_id, "--loss", "kl"])
    assert "class" in err


def test_cli_corrupt_checkpoint(capsys):
    argv = CLI_BASE + ["--model", STUDENT, "--epochs", "3"]
    rd = train_cli(argv)
    rd.summary_file.unlink()                       # pretend it stopped before the end
    rd.checkpoint_file.write_bytes(b"not a checkpoint")
    assert "corrupt checkpoint" in cli_error(capsys, argv)


# ------------------------------------------------------------------ resume after SIGKILL
def run_cli(argv, env):
    return subprocess.Popen([sys.executable, "-m", "reproduce.train", *argv], env=env,
                            cwd=Path(__file__).resolve().parents[1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    argv = CLI_BASE + ["--model", STUDENT, "--epochs", "12", "--batch-size", "16"]
    env = os.environ | {"OMP_NUM_THREADS": "1", "LOGIT_KD_DATA": str(tmp_path / "data")}
    straight_env = env | {"LOGIT_KD_RESULTS": str(tmp_path / "straight")}
    killed_env = env | {"LOGIT_KD_RESULTS": str(tmp_path / "killed")}
    assert run_cli(argv, straight_env).wait(timeout=300) == 0

    proc = run_cli(argv, killed_env)
    metrics = list((tmp_path / "killed").glob("runs/*/metrics.jsonl"))
    deadline = time.time() + 120
    while time.time() < deadline:
        metrics = list((tmp_path / "killed").glob("runs/*/metrics.jsonl"))
        if metrics and len(metrics[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert metrics, "the run never wrote metrics"
    done_before = len(metrics[0].read_text().splitlines())
    assert done_before < 12, "killed too late to test resume"
    assert run_cli(argv, killed_env).wait(timeout=300) == 0

    def rows(root):
        path = next(root.glob("runs/*/metrics.jsonl"))
        return comparable([json.loads(line) for line in path.read_text().splitlines()])

    assert rows(tmp_path / "killed") == rows(tmp_path / "straight")


def test_eval_every_skips_test_passes_but_not_the_last_ten_and_trains_the_same():
    """Evaluation never changes training: an eval_every=4 run ends bit-identical to an every-epoch
    run, evaluates epochs 1, 4, 8 and the last 10, and its summary statistics use only those."""
    t = teacher()
    kw = dict(**small(), loss="kl", loss_hparams={"tau": 4.0}, teachers=[t.config.run_id])
    every = train(make_config("exp", **kw, recipe_overrides={"epochs": 14}), quiet=True)
    sparse = train(make_config("exp", **kw, recipe_overrides={"epochs": 14, "eval_every": 4}), quiet=True)
    rows = sparse.metrics()
    assert [r["epoch"] for r in rows if "test_top1" in r] == [1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    assert all("train_loss" in r for r in rows) and "test_top1" not in rows[1]
    assert comparable(rows[-10:]) == comparable(every.metrics()[-10:])
    s_every, s_sparse = every.summary(), sparse.summary()
    assert s_sparse["last10_mean"]["test_top1"] == s_every["last10_mean"]["test_top1"]
    assert s_sparse["best"]["of_epochs"] == 12
    assert s_sparse["best"]["test_top1"] == max(r["test_top1"] for r in rows if "test_top1" in r)


def test_eval_every_below_one_is_refused():
    with pytest.raises(UserError, match="eval_every"):
        make_config("exp", **small(), recipe_overrides={"eval_every": 0})


def test_progress_name_tells_apart_what_the_slug_does_not():
    """Two TALD runs of one group differ only in their noise scale: the slug (part of the run id)
    is the same, the progress name is not, and a run without extra hyperparameters keeps its slug."""
    from engine.config import RunConfig
    runs = [RunConfig(experiment="x", dataset="mnist1d", model="cnn1d_student", loss="tald",
                      loss_hparams={"tau": 4.0, "scale": s}) for s in (0.5, 1.0)]
    assert runs[0].slug == runs[1].slug == "cnn1d_student-tald-tau4-s0"
    assert [r.display_name for r in runs] == ["cnn1d_student-tald-tau4-scale0.5-s0",
                                              "cnn1d_student-tald-tau4-scale1-s0"]
    plain = RunConfig(experiment="x", dataset="mnist1d", model="cnn1d_student", loss="kl",
                      loss_hparams={"tau": 4.0})
    assert plain.display_name == plain.slug
