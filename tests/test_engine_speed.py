"""The fast paths compute what the plain loop computes: stacked students, cached teacher logits.

No timings here (`make bench` measures them); only equality of results.
"""
import warnings

import pytest
import torch

from engine import make_config, teacher_config, train, train_group
from engine.cache import TeacherCacheWarning
from engine.trainer import Trainer

SIGNALS = {"num_train": 192, "num_test": 96, "num_classes": 4, "shape": [1, 24]}     # ShiftNoise: not enumerable
IMAGES = {"num_train": 96, "num_test": 64, "num_classes": 4, "shape": [1, 8, 8]}     # CropFlip pad 1: 18 views
KEYS = ("train_loss", "train_top1", "test_loss", "test_top1", "agree_top1", "kl_teacher_student", "lr")


pytestmark = pytest.mark.usefixtures("results")    # conftest: a temporary results/data folder


def signal_teacher():
    return train(teacher_config("synthetic", "cnn1d_teacher", dataset_options=SIGNALS), quiet=True)


def image_teacher():
    return train(teacher_config("synthetic", "cnn2d_teacher", dataset_options=IMAGES), quiet=True)


def close(rows_a, rows_b, rel=1e-4):
    assert [r["epoch"] for r in rows_a] == [r["epoch"] for r in rows_b]
    for a, b in zip(rows_a, rows_b):
        for k in KEYS:
            if k in a:
                assert a[k] == pytest.approx(b[k], rel=rel, abs=1e-5), (k, a[k], b[k])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_stacked_students_equal_separate_runs(optimizer):
    """Tolerance 1e-4 relative: grouped convolutions / bmm may sum in another order."""
    t = signal_teacher()
    recipe = {"epochs": 2, "optimizer": optimizer, "lr": 0.05 if optimizer == "sgd" else 1e-2}
    configs = [make_config("exp", "synthetic", "cnn1d_student", loss=name, loss_hparams=hp, teachers=[t.config.run_id],
                           dataset_options=SIGNALS, model_options={"length": 24}, recipe="smoke",
                           recipe_overrides=recipe)
               for name, hp in [("kl", {"tau": 1.0}), ("mse", {}), ("ikl", {"tau": 4.0})]]
    stacked = train_group(configs, quiet=True, stack=True)
    rows_stacked = [rd.metrics() for rd in stacked]
    weights_stacked = [torch.load(rd.model_file) for rd in stacked]
    alone = [train(c, quiet=True, force=True, stack=False) for c in configs]
    for rows, rd, w in zip(rows_stacked, alone, weights_stacked):
        close(rows, rd.metrics())
        for k, v in torch.load(rd.model_file).items():
            torch.testing.assert_close(w[k], v, rtol=1e-4, atol=1e-5)


def test_stacked_group_resumes_alone_from_its_checkpoint():
    """A stacked group writes ordinary per-model checkpoints: a run resumes from one alone."""
    t = signal_teacher()
    common = dict(dataset_options=SIGNALS, model_options={"length": 24}, recipe="smoke", teachers=[t.config.run_id])
    configs = [make_config("exp", "synthetic", "cnn1d_student", loss="kl", loss_hparams={"tau": tau},
                           recipe_overrides={"epochs": 3}, **common) for tau in (1.0, 4.0)]
    straight = [rd.metrics() for rd in train_group(configs, quiet=True, stack=False)]
    # stacked for 2 epochs, then the first run alone for its third epoch
    two = [make_config("exp", "synthetic", "cnn1d_student", loss="kl", loss_hparams={"tau": tau},
                       recipe_overrides={"epochs": 3}, **common) for tau in (1.0, 4.0)]
    trainer = Trainer(two, quiet=True, force=True, stack=True)
    trainer.epochs = 2
    members = [trainer._make_member(c) for c in two]
    trainer.stacked = trainer._maybe_stack(members)
    assert trainer.stacked is not None
    for epoch in range(2):
        trainer._train_epoch(members, epoch)
    resumed = train(two[0], quiet=True, stack=False).metrics()
    close(resumed, straight[0])


def test_cached_teacher_equals_online_teacher(results):
    t = image_teacher()
    common = dict(dataset_options=IMAGES, recipe="smoke", teachers=[t.config.run_id], loss="kl",
                  loss_hparams={"tau": 4.0})
    online = train(make_config("exp", "synthetic", "cnn2d_student", **common), quiet=True)
    rows_online = online.metrics()
    cached = train(make_config("exp", "synthetic", "cnn2d_student", teacher_cache=True, **common),
                   quiet=True, force=True)
    assert cached.path == online.path            # the cache is not part of the run id
    close(cached.metrics(), rows_online, rel=1e-5)
    files = sorted(t.path.glob("teacher_logits_*.pt"))
    assert len(files) == 1 and files[0].with_suffix(".json").exists()
    info = cached.summary()["teacher_cache"][0]
    assert info["dtype"] == "float32" and info["validation"]["ok"]
    table = torch.load(files[0])["logits"]
    assert table.shape == (IMAGES["num_train"], 18, IMAGES["num_classes"])


def test_cache_is_reused_and_a_corrupt_one_rebuilt(capsys):
    t = image_teacher()
    cfg = make_config("exp", "synthetic", "cnn2d_student", dataset_options=IMAGES, recipe="smoke",
                      recipe_overrides={"epochs": 1}, teachers=[t.config.run_id], loss="mse", teacher_cache=True)
    Trainer([cfg])
    assert "building the teacher cache" in capsys.readouterr().out
    Trainer([cfg])
    assert "building" not in capsys.readouterr().out
    path = next(t.path.glob("teacher_logits_*.pt"))
    path.write_bytes(path.read_bytes()[:-8] + b"garbage!")
    bank = Trainer([cfg]).teacher_bank
    assert "fails its checksum" in capsys.readouterr().out
    assert bank.lookup(torch.tensor([0, 1]), torch.tensor([3, 17])).shape == (2, IMAGES["num_classes"])


def test_non_enumerable_augmentation_falls_back_loudly(capsys):
    t = signal_teacher()
    cfg = make_config("exp", "synthetic", "cnn1d_student", dataset_options=SIGNALS, model_options={"length": 24},
                      recipe="smoke", teachers=[t.config.run_id], loss="kl", teacher_cache=True)
    with pytest.warns(TeacherCacheWarning, match="FALLING BACK"):
        trainer = Trainer([cfg], quiet=True)
    assert trainer.teacher_bank is None
    assert "WARNING" in capsys.readouterr().err


def test_float16_cache_for_large_tables(monkeypatch):
    """Tables over the float32 budget are stored in float16 and still match the online teacher."""
    import engine.cache as cache

    monkeypatch.setattr(cache, "FP32_LIMIT_BYTES", 0)
    t = image_teacher()
    cfg = make_config("exp", "synthetic", "cnn2d_student", dataset_options=IMAGES, recipe="smoke",
                      recipe_overrides={"epochs": 1}, teachers=[t.config.run_id], loss="kl", teacher_cache=True)
    trainer = Trainer([cfg], quiet=True)
    (entry,) = trainer.teacher_bank.describe()
    assert entry["dtype"] == "float16" and entry["validation"]["ok"]
    batch = next(trainer.bundle.train.batches(32, shuffle=True, generator=torch.Generator().manual_seed(0)))
    online = trainer.teachers[0].model(batch.x).logits
    cached = trainer.teacher_bank.lookup(batch.index, batch.views)
    assert cached.dtype == torch.float32
    torch.testing.assert_close(cached, online, rtol=2e-3, atol=2e-3)


def test_compile_modes_normalise_and_unknown_ones_are_refused():
    from common import UserError
    from engine.trainer import compile_mode

    assert [compile_mode(v) for v in (False, None, True, "reduce-overhead")] == [None, None, "default",
                                                                              "reduce-overhead"]
    with pytest.raises(UserError, match="reduce-overhead"):
        compile_mode("cudagraphs")


def test_compile_on_cpu_keeps_the_plain_model_and_says_so(capsys):
    cfg = make_config("exp", "synthetic", "cnn1d_student", dataset_options=SIGNALS, model_options={"length": 24})
    trainer = Trainer([cfg], device="cpu", compile="reduce-overhead")
    assert trainer.compile_mode == "reduce-overhead" and not trainer.compile
    assert "CUDA only" in capsys.readouterr().out


def test_cli_compile_takes_an_optional_mode():
    from reproduce.train import build_parser

    base = ["--dataset", "synthetic", "--model", "cnn1d_student"]
    assert build_parser().parse_args(base).compile is None
    assert build_parser().parse_args(base + ["--compile"]).compile == "default"
    assert build_parser().parse_args(base + ["--compile", "reduce-overhead"]).compile == "reduce-overhead"


def test_fast_pooling_and_io_threads_change_no_bit(monkeypatch):
    """engine/fastops.py (students and teacher) and the I/O threads: the same metrics, the same
    weights (model.pt checksum) and the same checkpoint as torch's pooling with in-line writes."""
    t = signal_teacher()
    configs = [make_config("exp", "synthetic", model, loss="kl", loss_hparams={"tau": 2.0}, teachers=[t.config.run_id],
                           dataset_options=SIGNALS, model_options=opts, recipe="smoke")
               for model, opts in (("cnn1d_student", {"length": 24}), ("cnn1d_s100_shallow", {}))]

    def run(fast: bool):
        monkeypatch.setenv("LOGIT_KD_FASTOPS", "1" if fast else "0")
        trainer = Trainer(configs, quiet=True, force=True, stack=False)
        trainer.io_threads = fast
        rds = trainer.run()
        return ([[{k: v for k, v in r.items() if k != "train_time_s"} for r in rd.metrics()] for rd in rds],
                [rd.summary()["model_sha256"] for rd in rds],
                [torch.load(rd.checkpoint_file, weights_only=False)["optimizer"] for rd in rds])

    rows_fast, sha_fast, opt_fast = run(True)
    rows_plain, sha_plain, opt_plain = run(False)
    assert rows_fast == rows_plain and sha_fast == sha_plain
    for a, b in zip(opt_fast, opt_plain):
        for pa, pb in zip(a["state"].values(), b["state"].values()):
            assert all(torch.equal(pa[k], pb[k]) for k in pa)
