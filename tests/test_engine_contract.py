"""The trainer's contract, checked against values computed here independently of the engine:
the objective and the schedules, the loss hooks, stateful resume, label noise end to end, the
teacher cache and the recorded metrics. (tests/test_engine.py compares engine paths with each
other; a bug two paths share passes there, not here.)"""
import math
import re
import shutil

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st

from common import UserError
from data import build_dataset
from data.noise import noisy_labels
from engine import LabelNoise, RunDir, make_config, teacher_config, train, validate_configs
from engine.recipes import Recipe, lr_at
from engine.trainer import Trainer, build_optimizer, epoch_generator
from losses import LOSSES
from losses.base import DistillLoss
from models import build_model
from run_helpers import killed_at_step

DATA = {"num_train": 192, "num_test": 96, "num_classes": 4, "shape": [1, 24]}
STEPS = 3           # 192 samples, batch 64 (the smoke recipe)

pytestmark = pytest.mark.usefixtures("results")    # conftest: a temporary results/data folder


class Recording(DistillLoss):
    """A loss of known value (`value`, no gradient) that records every hook call."""

    name = "recording"
    made: list = []

    def __init__(self, value: float = 2.5):
        super().__init__(value=value)
        self.value, self.events = value, []
        Recording.made.append(self)

    def forward(self, zs, zt, targets):
        self.events.append(("call", zs.detach().clone(), zt.clone(), targets.clone()))
        return zs.sum() * 0.0 + self.value

    def set_progress(self, p):
        super().set_progress(p)
        self.events.append(("progress", p))

    def observe_teacher(self, teacher_logits, targets):
        self.events.append(("observe", teacher_logits.clone(), targets.clone()))

    def end_epoch(self):
        self.events.append(("end_epoch",))


@pytest.fixture
def recording(monkeypatch):
    Recording.made = []
    monkeypatch.setitem(LOSSES._factories, "recording", Recording)
    return Recording


def teacher(seed=0, noise=None, data=DATA, model="cnn1d_teacher"):
    return train(teacher_config("synthetic", model, seed=seed, dataset_options=data, label_noise=noise), quiet=True)


def student(t_runs, loss="kl", hp=None, overrides=None, noise=None, data=DATA, **kw):
    return make_config("contract", "synthetic", "cnn1d_student", loss=loss, loss_hparams=hp or {},
                       teachers=t_runs, dataset_options=data, model_options={"length": data["shape"][-1]},
                       recipe_overrides=overrides, label_noise=noise, **kw)


def loaded(rd: RunDir):
    """The run's final model, rebuilt from its config and model.pt, in eval mode."""
    c = rd.config
    model = build_model(c.model, num_classes=DATA["num_classes"], in_channels=1, **c.model_options)
    model.load_state_dict(torch.load(rd.model_file))
    return model.eval()


def replay(config, epoch, labels=None):
    """The batches of 0-based `epoch` as the data API yields them for this run's seed."""
    split = build_dataset("synthetic", **config.dataset_options).train
    if labels is not None:
        split = split.with_labels(labels)
    return list(split.batches(config.recipe["batch_size"], shuffle=True, generator=epoch_generator(config.seed, epoch)))


def hand_ce(zs, y):
    zs = zs.double()
    return (torch.logsumexp(zs, 1) - zs.gather(1, y[:, None]).squeeze(1)).mean().item()


# ------------------------------------------------------------------ objective and schedules
def test_logged_loss_is_the_weighted_objective_with_warmup(recording):
    t = teacher()
    cfg = student([t.config.run_id], loss="recording", hp={"value": 2.5},
                  overrides={"epochs": 3, "warmup_epochs": 2, "ce_weight": 0.7, "kd_weight": 1.5})
    rows = train(cfg, quiet=True).metrics()
    calls = [e for e in recording.made[-1].events if e[0] == "call"]
    assert len(calls) == 3 * STEPS
    for epoch, row in enumerate(rows):
        ramp = min((epoch + 1) / 2, 1.0)            # mdistiller's min(epoch / warmup, 1), epoch 1-based
        steps = calls[epoch * STEPS:(epoch + 1) * STEPS]
        expected = sum(1.5 * ramp * 2.5 + 0.7 * hand_ce(zs, y) for _, zs, _, y in steps) / STEPS
        assert row["train_loss"] == pytest.approx(expected, rel=1e-6)


def test_multistep_lr_at_milestones_matches_torch_scheduler():
    r = Recipe(epochs=6, batch_size=1, lr=0.5, schedule="multistep", milestones=(2, 4), gamma=0.1)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.1)
    for epoch in range(6):
        for step in (0, 3):
            assert lr_at(r, epoch, step, 4) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        sched.step()
    assert [lr_at(r, e, 0, 4) for e in (1, 2, 3, 4)] == pytest.approx([0.5, 0.05, 0.05, 0.005])


@given(epochs=st.integers(1, 6), steps=st.integers(1, 7), lr=st.floats(1e-4, 1.0))
def test_cosine_lr_matches_torch_per_step_and_its_end_points(epochs, steps, lr):
    r = Recipe(epochs=epochs, batch_size=1, lr=lr, schedule="cosine")
    total = epochs * steps
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=0.0)
    for t in range(total):
        assert lr_at(r, t // steps, t % steps, steps) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        opt.step()
        sched.step()
    assert lr_at(r, 0, 0, steps) == lr                                  # starts at the peak
    assert lr_at(r, epochs, 0, steps) == pytest.approx(0.0, abs=1e-15)  # reaches 0 at the end
    assert 0 < lr_at(r, epochs - 1, steps - 1, steps) < lr or total == 1


def test_logged_lr_follows_the_multistep_schedule():
    cfg = make_config("contract", "synthetic", "cnn1d_student", dataset_options=DATA, model_options={"length": 24},
                      recipe_overrides={"epochs": 5, "optimizer": "sgd", "lr": 0.2, "schedule": "multistep",
                                        "milestones": [2, 4], "gamma": 0.5})
    assert [r["lr"] for r in train(cfg, quiet=True).metrics()] == [0.2, 0.2, 0.1, 0.1, 0.05]


@pytest.mark.parametrize("exempt", [True, False])
def test_bn_and_bias_parameters_get_no_weight_decay_when_exempt(exempt):
    model = build_model("cnn1d_teacher", num_classes=4, in_channels=1)
    recipe = Recipe(epochs=1, batch_size=1, lr=1.0, momentum=0.0, weight_decay=0.1, wd_exempt_bn_bias=exempt)
    opt = build_optimizer(model, recipe)
    exempt_ids = set()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            exempt_ids |= {id(module.weight), id(module.bias)}
        if getattr(module, "bias", None) is not None:
            exempt_ids.add(id(module.bias))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()                                    # zero gradient: only weight decay moves a parameter
    for name, p in model.named_parameters():
        decayed = not (exempt and id(p) in exempt_ids)
        torch.testing.assert_close(p.detach(), before[name] * (0.9 if decayed else 1.0), rtol=1e-6, atol=0)
    assert exempt_ids and len(exempt_ids) < len(before)


# ------------------------------------------------------------------ hooks
def test_hooks_see_progress_teacher_logits_noisy_labels_and_epoch_ends(recording):
    noise = LabelNoise("symmetric", 0.3, 5)
    t = teacher(noise=noise)
    cfg = student([t.config.run_id], loss="recording", overrides={"epochs": 2}, noise=noise)
    train(cfg, quiet=True)
    events = recording.made[-1].events
    clean = build_dataset("synthetic", **DATA).train.labels
    noisy = noisy_labels(clean, DATA["num_classes"], "symmetric", 0.3, 5)
    assert (noisy != clean).any()
    model = loaded(t)
    expected, i = [], 0
    for epoch in range(2):
        for step, batch in enumerate(replay(cfg, epoch, noisy)):
            assert events[i] == ("progress", (epoch + step / STEPS) / 2)
            kind, _, zt_call, y_call = events[i + 1]
            kind_o, zt, y = events[i + 2]
            assert (kind, kind_o) == ("call", "observe")
            with torch.no_grad():
                torch.testing.assert_close(zt, model(batch.x).logits, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(zt_call, zt, rtol=0, atol=0)
            assert torch.equal(y, noisy[batch.index]) and torch.equal(y_call, y)
            i += 3
        assert events[i] == ("end_epoch",)
        i += 1
    assert i == len(events)


def test_ikl_class_prior_equals_one_computed_by_hand():
    t = teacher()
    cfg = student([t.config.run_id], loss="ikl", hp={"class_prior": True, "T2": 4.0}, overrides={"epochs": 2})
    rd = train(cfg, quiet=True)
    prior = torch.load(rd.checkpoint_file, weights_only=False)["loss"]["prior"]
    assert prior is not None
    model = loaded(t)
    sums = torch.zeros(4, 4, dtype=torch.float64)
    with torch.no_grad():
        for batch in replay(cfg, 1):                # the prior in use after epoch 2: epoch 2's teacher
            sums.index_add_(0, batch.y, F.softmax(model(batch.x).logits.double() / 4.0, dim=1))
    torch.testing.assert_close(prior.double(), sums / sums.sum(1, keepdim=True), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ stateful resume
@pytest.mark.parametrize("loss, hp", [
    ("tald", {"base": "kl", "tau": 4.0, "scale": 0.5, "schedule": "linear"}),
    ("ikl", {"class_prior": True, "T2": 4.0}),
])
def test_killed_and_resumed_stateful_student_ends_as_uninterrupted(tmp_path, monkeypatch, loss, hp):
    t = teacher()
    cfg = student([t.config.run_id], loss=loss, hp=hp, overrides={"epochs": 4})
    other = tmp_path / "straight"
    shutil.copytree(t.path, other / "runs" / t.path.name)
    killed_at_step(cfg, monkeypatch, 2 * STEPS + 2)   # epoch 3, step 2: the checkpoint of epoch 2 is the last
    rd = RunDir(cfg)
    assert torch.load(rd.checkpoint_file, weights_only=False)["epoch"] == 2
    resumed = train(cfg, quiet=True)
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(other))
    straight = train(cfg, quiet=True)

    def comparable(rows):
        return [{k: v for k, v in r.items() if k != "train_time_s"} for r in rows]

    assert comparable(resumed.metrics()) == comparable(straight.metrics())
    a, b = torch.load(resumed.model_file), torch.load(straight.model_file)
    assert all(torch.equal(a[k], b[k]) for k in b)
    state_a = torch.load(resumed.checkpoint_file, weights_only=False)["loss"]
    state_b = torch.load(straight.checkpoint_file, weights_only=False)["loss"]
    assert _equal_state(state_a, state_b)


def _equal_state(a, b) -> bool:
    """Exactly equal, NaN equal to NaN (ikl's history starts with a NaN change)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal_state, a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


# ------------------------------------------------------------------ label noise
def test_label_noise_end_to_end(results):
    data = {**DATA, "num_train": 600}
    noise = LabelNoise("symmetric", 0.4, 0)
    t = teacher(noise=noise, data=data)
    (labels_file,) = (results / "labels").iterdir()
    stamp = labels_file.stat().st_mtime_ns
    saved = torch.load(labels_file)["labels"]
    bundle = build_dataset("synthetic", **data)
    clean = bundle.train.labels
    flipped = saved != clean
    assert abs(flipped.float().mean().item() - 0.4) < 0.06
    assert torch.equal(saved, noisy_labels(clean, 4, "symmetric", 0.4, 0))
    s = train(student([t.config.run_id], noise=noise, data=data), quiet=True)
    assert list((results / "labels").iterdir()) == [labels_file] and labels_file.stat().st_mtime_ns == stamp
    assert torch.equal(torch.load(s.path / "outputs.pt")["labels"], bundle.test.labels)   # test labels stay clean
    other_seed = student([t.config.run_id], noise=LabelNoise("symmetric", 0.4, 1), data=data)
    with pytest.raises(UserError, match="label corruption"):
        validate_configs([other_seed])
    with pytest.raises(UserError, match="label corruption"):
        train(other_seed, quiet=True)
    assert not RunDir(other_seed).path.exists()


# ------------------------------------------------------------------ teacher cache and metrics
IMAGES = {"num_train": 96, "num_test": 64, "num_classes": 4, "shape": [1, 8, 8]}   # CropFlip pad 1: 18 views


def image_setup():
    t = train(teacher_config("synthetic", "cnn2d_teacher", dataset_options=IMAGES), quiet=True)
    cfg = make_config("contract", "synthetic", "cnn2d_student", dataset_options=IMAGES, recipe_overrides={"epochs": 1},
                      teachers=[t.config.run_id], loss="kl", teacher_cache=True)
    return t, cfg


def test_a_cache_that_differs_from_the_online_teacher_is_refused():
    t, cfg = image_setup()
    Trainer([cfg], quiet=True)
    path = next(t.path.glob("teacher_logits_*.pt"))
    blob = torch.load(path)
    blob["logits"] += 0.5
    torch.save(blob, path)
    import hashlib
    import json

    meta = path.with_suffix(".json")
    info = json.loads(meta.read_text()) | {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    meta.write_text(json.dumps(info))                  # a consistent file with the wrong logits
    with pytest.raises(UserError, match=f"differs from the online teacher.*rm {re.escape(str(path))}"):
        Trainer([cfg], quiet=True)


def test_a_changed_teacher_gets_a_new_cache():
    t, cfg = image_setup()
    Trainer([cfg], quiet=True)
    first = sorted(t.path.glob("teacher_logits_*.pt"))
    weights = torch.load(t.model_file)
    key = [k for k in weights if k.endswith("classifier.bias")][0]
    weights[key] = weights[key] + 1e-3                  # same accuracy, other weights
    RunDir(t.config).save_model(weights)
    bank = Trainer([cfg], quiet=True).teacher_bank
    files = sorted(t.path.glob("teacher_logits_*.pt"))
    assert len(first) == 1 and len(files) == 2 and first[0] in files
    new = [f for f in files if f != first[0]][0]
    assert bank.files[0].path == new


def test_agreement_metrics_and_summary_equal_values_recomputed_from_outputs_and_log():
    t = teacher()
    rd = train(student([t.config.run_id], hp={"tau": 4.0}, overrides={"epochs": 12}), quiet=True)
    out = torch.load(rd.path / "outputs.pt")
    zs, zt = out["logits"].double(), out["teacher_logits"].double()
    test = build_dataset("synthetic", **DATA).test
    x = torch.cat([b.x for b in test.batches(1000, shuffle=False, generator=None)])
    with torch.no_grad():                              # the teacher's test logits, recomputed
        torch.testing.assert_close(out["teacher_logits"], loaded(t)(x).logits, rtol=1e-5, atol=1e-5)
    rows = rd.metrics()
    final = rows[-1]
    p_t = torch.softmax(zt, 1)
    kl = (p_t * (torch.log_softmax(zt, 1) - torch.log_softmax(zs, 1))).sum(1).mean().item()
    d = zs - zt
    assert final["kl_teacher_student"] == pytest.approx(kl, rel=1e-4)
    assert final["logit_dist"] == pytest.approx(d.pow(2).sum(1).sqrt().mean().item(), rel=1e-5)
    assert final["mean_shift"] == pytest.approx(d.mean(1).abs().mean().item(), rel=1e-4, abs=1e-6)
    assert final["test_top1"] == pytest.approx(100.0 * (zs.argmax(1) == out["labels"]).double().mean().item())
    summary = rd.summary()
    assert summary["final"] == final and summary["epochs"] == 12
    for key in ("train_loss", "test_top1", "kl_teacher_student", "logit_dist"):
        assert summary["last10_mean"][key] == pytest.approx(sum(r[key] for r in rows[2:]) / 10, rel=1e-12)
    best = max(rows, key=lambda r: r["test_top1"])
    assert (summary["best"]["epoch"], summary["best"]["test_top1"]) == (best["epoch"], best["test_top1"])


@pytest.mark.parametrize("how", ["mean", "sum"])
def test_ensemble_teacher_logits_are_the_mean_or_sum_of_its_members(recording, how):
    members = [teacher(seed=s) for s in (0, 1)]
    cfg = student([m.config.run_id for m in members], loss="recording", ensemble=how, overrides={"epochs": 1})
    rd = train(cfg, quiet=True)
    combine = (lambda z: z.mean(0)) if how == "mean" else (lambda z: z.sum(0))
    test = torch.stack([torch.load(m.path / "outputs.pt")["logits"] for m in members])
    torch.testing.assert_close(torch.load(rd.path / "outputs.pt")["teacher_logits"], combine(test), rtol=1e-6, atol=1e-6)
    batch = replay(cfg, 0)[0]
    with torch.no_grad():
        by_hand = combine(torch.stack([loaded(m)(batch.x).logits for m in members]))
    _, _, zt, _ = next(e for e in recording.made[-1].events if e[0] == "call")
    torch.testing.assert_close(zt, by_hand, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(zt, torch.stack([loaded(m)(batch.x).logits for m in members])[0].detach())
