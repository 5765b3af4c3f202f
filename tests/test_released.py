"""Released teachers: files the tests write in mdistiller's and torchvision's layouts, imported as
finished runs (logits equal to the source model's), measured at first use, used by the paper
scripts with --teachers released; every mistake one line."""
import hashlib
import json
import re

import pytest
import torch
import torchvision

from common import UserError
from engine import RunDir, make_config, train
from engine.imported import SETTINGS, Setting, import_teacher
from engine.rundir import store_root
from engine.teachers import load_teacher
from models import build_model
from models.released import TABLES, map_names
from reproduce import released
from reproduce.profiles import SMOKE
from reproduce.store import main as store_cli

pytestmark = pytest.mark.usefixtures("results")    # conftest: a temporary results/data folder

# sha256 (first 16 hex) of the sorted (name, shape) list of each model's state dict as mdistiller's
# own definitions build it (megvii-research/mdistiller, mdistiller/models/cifar/, 100 classes)
MDISTILLER_KEYS = {
    "resnet8": "39c6acc1ba29ecf6", "resnet20": "cf710a76243f2b8c", "resnet56": "5d442f2912af2aaf",
    "resnet110": "8f50cd07f82e75cb", "resnet8x4": "6cfd514df58b28af", "resnet32x4": "86c2084be49fc2a3",
    "wrn_16_2": "26f9310b77cb672d", "wrn_40_1": "80b07f9efab3be01", "wrn_40_2": "961658504d5ec9da",
    "vgg8": "0a387e34dd845714", "vgg13": "86b9c338b9dbc6c7", "ResNet50": "13bb09321c5b6498",
    "MobileNetV2": "4f50e9ebb8f90a54", "ShuffleV1": "0d87b45d0a9e89ab", "ShuffleV2": "d2c6860f03cc1a5d",
}
RELEASED = ("resnet56", "resnet110", "resnet32x4", "wrn_40_2", "vgg13", "ResNet50")   # mdistiller's cifar_teachers


def to_mdistiller(name: str, model: str) -> str:
    """Our parameter name in mdistiller's naming, written out per family (not from the tables)."""
    t = name.split(".")
    if model.startswith("resnet"):
        return name.replace(".shortcut.", ".downsample.").replace("classifier.", "fc.", 1)
    if model.startswith("wrn"):
        if t[0].startswith("block"):
            t = [t[0], "layer", *t[1:]]
            t = ["convShortcut" if x == "shortcut" else x for x in t]
        return ".".join({"bn": ["bn1"], "classifier": ["fc"]}.get(t[0], [t[0]]) + t[1:])
    if model.startswith("vgg"):
        return f"block{t[1]}.{'.'.join(t[2:])}" if t[0] == "blocks" else name
    if model == "ResNet50":
        return name.replace("classifier.", "linear.", 1)
    if model == "MobileNetV2":
        head = {"stem": "conv1", "stages": "blocks", "head": "conv2", "classifier": "classifier.0"}[t[0]]
        if t[0] == "stages":      # stages.s.b.conv.<ours> -> blocks.s.b.conv.<flat index>
            flat = {"0.0": "0", "0.1": "1", "1.0": "3", "1.1": "4", "2": "6", "3": "7"}
            inner = ".".join(t[4:-1])
            return f"blocks.{t[1]}.{t[2]}.conv.{flat[inner]}.{t[-1]}"
        return ".".join([head, *t[1:]])
    if model == "ShuffleV1":
        return f"layer{int(t[1]) + 1}.{'.'.join(t[2:])}" if t[0] == "stages" else name.replace("classifier.", "linear.")
    if model == "ShuffleV2":
        if t[0] in ("stem", "head"):
            return f"{'conv' if t[2] == '0' else 'bn'}{1 if t[0] == 'stem' else 2}.{t[-1]}"
        if t[0] == "classifier":
            return f"linear.{t[-1]}"
        kind = "conv" if t[-2] == "0" else "bn"
        if t[2] == "0":           # down block: left.0 left.1 right.0 right.2 right.3 -> 1..5
            number = {("left", "0"): 1, ("left", "1"): 2, ("right", "0"): 3, ("right", "2"): 4, ("right", "3"): 5}[(t[3], t[4])]
        else:                     # basic block: branch.0 branch.2 branch.3 -> 1..3
            number = {"0": 1, "2": 2, "3": 3}[t[4]]
        return f"layer{int(t[1]) + 1}.{t[2]}.{kind}{number}.{t[-1]}"
    raise KeyError(model)


def randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights and BatchNorm statistics (so that a misplaced one shows in the logits)."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def fingerprint(state: dict) -> str:
    keys = sorted((k, tuple(v.shape)) for k, v in state.items())
    return hashlib.sha256(repr(keys).encode()).hexdigest()[:16]


def mdistiller_file(path, model: str, num_classes=100, **extra):
    """Our model with random weights, saved as mdistiller saves a teacher; returns the model."""
    torch.manual_seed(0)
    src = randomized(build_model(model, num_classes=num_classes))
    state = {to_mdistiller(k, model): v for k, v in src.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 240, "model": state, "accuracy": torch.tensor(71.5), **extra}, path)
    return src


def logits(model, x):
    with torch.no_grad():
        out = model(x)
    return out.logits if hasattr(out, "logits") else out


def imported_model(rd: RunDir, num_classes: int):
    return load_teacher(rd.path.name, num_classes, 3, "cpu").model


# --- the name tables -----------------------------------------------------------------------------
@pytest.mark.parametrize("model", sorted(MDISTILLER_KEYS))
def test_mdistiller_names_map_onto_ours_with_equal_logits(model):
    torch.manual_seed(1)
    src = randomized(build_model(model, num_classes=100))
    theirs = {to_mdistiller(k, model): v for k, v in src.state_dict().items()}
    assert fingerprint(theirs) == MDISTILLER_KEYS[model]          # exactly mdistiller's names and shapes
    ours = build_model(model, num_classes=100)
    ours.load_state_dict(map_names(theirs, "mdistiller", model, ours))
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(logits(ours.eval(), x), logits(src, x))


@pytest.mark.parametrize("model", ["resnet34", "resnet50"])
def test_torchvision_weights_load_unchanged(model):
    torch.manual_seed(2)
    tv = randomized(getattr(torchvision.models, model)())
    ours = build_model(model, num_classes=1000)
    ours.load_state_dict(map_names(tv.state_dict(), "torchvision", model, ours))
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(logits(ours.eval(), x), logits(tv, x))


def test_every_table_names_a_registered_model():
    from models import list_models

    assert all(m in list_models() for table in TABLES.values() for m in table)


# --- import-teacher --------------------------------------------------------------------------------
@pytest.mark.parametrize("model", RELEASED)
def test_imported_mdistiller_teacher_is_a_finished_run_with_the_source_logits(tmp_path, capsys, model):
    file = tmp_path / "cifar_teachers" / f"{model}_vanilla" / "ckpt_epoch_240.pth"
    src = mdistiller_file(file, model)
    store_cli(["import-teacher", str(file), "--format", "mdistiller", "--model", model, "--dataset", "cifar100"])
    run_id = capsys.readouterr().out.strip().splitlines()[-1]      # the run id is the last line
    rd = RunDir.at(store_root() / run_id)
    assert rd.finished and rd.status() == "done"
    rd.verify()
    config = json.loads(rd.config_file.read_text())
    assert config["imported"]["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert config["dataset_options"] == {"norm": "mdistiller"} and config["loss"] == "ce"
    summary = rd.summary()
    assert summary["final"] == {} and summary["imported"]["file_accuracy"] == pytest.approx(71.5)
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(logits(imported_model(rd, 100), x), logits(src, x))


def test_imported_torchvision_teacher_has_the_source_logits(tmp_path):
    torch.manual_seed(3)
    tv = randomized(torchvision.models.resnet34())
    file = tmp_path / "resnet34-b627a593.pth"
    torch.save(tv.state_dict(), file)
    rd = import_teacher(file, "torchvision", "resnet34", "imagenet")
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(logits(imported_model(rd, 1000), x), logits(tv, x))


def test_run_id_follows_the_bytes_not_the_path(tmp_path):
    a, b, c = (tmp_path / n / "ckpt_epoch_240.pth" for n in "abc")
    mdistiller_file(a, "resnet8")
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    mdistiller_file(c, "resnet8", note=1)            # the same weights, other bytes
    ids = [import_teacher(f, "mdistiller", "resnet8", "cifar100", log=lambda *a: None).path.name for f in (a, b, c)]
    assert ids[0] == ids[1] != ids[2]


def one_line_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        store_cli(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    return err


def test_mistakes_are_one_line_and_write_nothing(tmp_path, capsys, results):
    md = tmp_path / "md.pth"
    mdistiller_file(md, "resnet8")
    bare = tmp_path / "bare.pth"
    torch.save(build_model("resnet8").state_dict(), bare)
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    args = lambda f, fmt="mdistiller", model="resnet8", data="cifar100": [  # noqa: E731
        "import-teacher", str(f), "--format", fmt, "--model", model, "--dataset", data]
    cases = {
        "shape": (args(md, model="resnet8x4"), r"'conv1.weight' has shape \(16, 3, 3, 3\), our resnet8x4 needs"),
        "deeper": (args(md, model="resnet14"), r"our resnet14 needs \d+ parameter\(s\) the file lacks"),
        "format": (args(md, fmt="torchvision", data="imagenet"), r"not a torchvision weights file.*--format mdistiller"),
        "bare": (args(bare), r"not an mdistiller checkpoint.*--format torchvision"),
        "junk": (args(junk), r"cannot read .*junk.pth as torch weights"),
        "missing": (args(tmp_path / "nope.pth"), r"no file .*nope.pth"),
        "pair": (args(md, data="imagenet"), r"no released mdistiller teachers for imagenet"),
        "table": (args(md, model="cnn1d_teacher"), r"no mdistiller name table for model 'cnn1d_teacher'"),
    }
    for name, (argv, message) in cases.items():
        assert re.search(message, one_line_error(capsys, argv)), name
    assert not (results / "runs").exists() or not any((results / "runs").iterdir())


def test_an_imported_run_is_never_trained_and_its_fix_is_to_import_it_again(tmp_path, capsys):
    file = tmp_path / "t.pth"
    mdistiller_file(file, "resnet8")
    rd = import_teacher(file, "mdistiller", "resnet8", "cifar100")
    with pytest.raises(UserError, match="never trained; import it: python -m reproduce.store import-teacher"):
        train(rd.config, force=True)
    rd.model_file.write_bytes(b"damaged")
    with pytest.raises(UserError, match=r"fails its checksum.*import it again: python -m reproduce.store import-teacher "
                                        + re.escape(str(file))):
        rd.verify()
    import_teacher(file, "mdistiller", "resnet8", "cifar100")       # a damaged copy is replaced
    rd.verify()


# --- first use: measured and recorded -----------------------------------------------------------
@pytest.fixture
def smoke_release(monkeypatch, tmp_path):
    """cnn1d_teacher on the smoke data as if mdistiller had released it (its name table renames
    `classifier` to `fc`), and the file in a released-teachers folder."""
    monkeypatch.setitem(SETTINGS, ("mdistiller", "synthetic"),
                        Setting(dict(SMOKE.dataset_options), "smoke", 4, "released (mdistiller)", in_channels=1))
    monkeypatch.setitem(TABLES["mdistiller"], "cnn1d_teacher", [(r"^fc\.", "classifier.")])
    monkeypatch.setitem(released.RELEASES, ("synthetic", "cnn1d_teacher"),
                        released.Release("mdistiller", ("smoke/teacher.pth",), "the test"))
    torch.manual_seed(4)
    src = randomized(build_model("cnn1d_teacher", num_classes=4, in_channels=1))
    file = tmp_path / "released" / "smoke" / "teacher.pth"
    file.parent.mkdir(parents=True)
    torch.save({"model": {k.replace("classifier.", "fc."): v for k, v in src.state_dict().items()}}, file)
    return file


def student(teacher_id, seed=0):
    return make_config("t", "synthetic", "cnn1d_student", loss="kl", loss_hparams={"tau": 4.0}, teachers=[teacher_id],
                       dataset_options=SMOKE.dataset_options, model_options={"length": 24}, seed=seed)


def test_first_student_measures_and_records_the_teachers_accuracy(smoke_release):
    rd = import_teacher(smoke_release, "mdistiller", "cnn1d_teacher", "synthetic")
    assert rd.summary()["final"] == {}
    s = train(student(rd.path.name), quiet=True)
    summary = rd.summary()
    out = torch.load(rd.path / "outputs.pt")
    by_hand = 100.0 * (out["logits"].argmax(1) == out["labels"]).float().mean().item()
    assert summary["final"]["test_top1"] == pytest.approx(by_hand)
    assert summary["best"]["test_top1"] == summary["last10_mean"]["test_top1"] == summary["final"]["test_top1"]
    assert summary["measured"]["by"] == s.path.name
    assert s.summary()["teachers"][0]["recorded_top1"] == pytest.approx(by_hand)
    from analysis.runs import load_runs

    assert load_runs([rd.path.name]).loc[rd.path.name, "final_test_top1"] == pytest.approx(by_hand)
    stamp = rd.summary_file.stat().st_mtime_ns
    train(student(rd.path.name, seed=1), quiet=True)      # the next student checks against the record
    assert rd.summary_file.stat().st_mtime_ns == stamp


# --- the paper scripts: --teachers released DIR ---------------------------------------------------
def test_paper_script_with_released_teachers_end_to_end(smoke_release, results, capsys):
    from reproduce.compare import EXPERIMENT, main as compare_cli
    from reproduce.runner import plan_configs

    folder = smoke_release.parent.parent
    compare_cli(["table", "--profile", "smoke", "--quiet", "--teachers", "released", str(folder)])
    configs = plan_configs(released.resolve(EXPERIMENT.plan("smoke"), "released", folder), "table")
    imported = [c for c in configs if c.imported]
    assert [c.model for c in imported] == ["cnn1d_teacher"]
    tid = imported[0].run_id
    learners = [c for c in configs if c.teachers and c.teachers[0].startswith("cnn1d_teacher")]
    assert learners and all(c.teachers == (tid,) for c in learners)
    assert all(RunDir(c).finished for c in configs)
    assert RunDir(imported[0]).summary()["final"]["test_top1"] is not None       # measured at first use
    table = (results / "compare" / "smoke" / "comparison.md").read_text()
    assert "teacher cnn1d_teacher, released (mdistiller)" in table
    manifest = json.loads((results / "compare" / "smoke" / "manifest" / "comparison.table.json").read_text())
    assert manifest["runs"][tid]["label"] == "cnn1d_teacher released (mdistiller)"
    # --teachers train: the plan as declared, its own trained teacher
    plain = plan_configs(released.resolve(EXPERIMENT.plan("smoke"), *released.parse(["train"])), "table")
    assert {c.run_id for c in plain} == {c.run_id for c in plan_configs(EXPERIMENT.plan("smoke"), "table")}
    assert not any(c.imported for c in plain)


def test_missing_released_file_is_one_line_naming_it_and_its_source(tmp_path, capsys):
    from reproduce.decoupled_kl import main as paper2

    with pytest.raises(SystemExit) as e:
        paper2(["same-family", "--profile", "paper", "--dry-run", "--teachers", "released", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert f"missing {tmp_path}/cifar_teachers/" in err and "cifar_teachers.tar of mdistiller's GitHub release" in err


def test_paper_profile_takes_released_teachers_only_when_the_folder_holds_them(tmp_path, monkeypatch):
    from reproduce.decoupled_kl import EXPERIMENT
    from reproduce.runner import prepare

    monkeypatch.chdir(tmp_path)
    declared = {c.run_id for c in prepare(EXPERIMENT, "cross-family", "paper", teachers=["train"])[1]}
    assert {c.run_id for c in prepare(EXPERIMENT, "cross-family", "paper")[1]} == declared   # no download_ckpts/
    for model in ("resnet32x4", "wrn_40_2", "vgg13", "ResNet50"):              # Table 14's teachers
        mdistiller_file(tmp_path / "download_ckpts" / "cifar_teachers" / f"{model}_vanilla" / "ckpt_epoch_240.pth", model)
    configs = prepare(EXPERIMENT, "cross-family", "paper")[1]
    teachers = [c for c in configs if c.imported]
    assert sorted(c.model for c in teachers) == ["ResNet50", "resnet32x4", "vgg13", "wrn_40_2"]
    ids = {c.run_id for c in teachers}
    assert all(c.teachers[0] in ids for c in configs if c.teachers)
    with pytest.raises(UserError, match="takes 'train' or 'released"):
        released.parse(["train", "x"])
    with pytest.raises(UserError, match="none of its teachers has a released checkpoint"):
        from reproduce.kl_vs_mse import EXPERIMENT as paper1

        prepare(paper1, "all", "paper", teachers=["released"])


def test_tables_call_released_teachers_so_in_their_row_or_column():
    from reproduce.plan import Table, cell

    t = released.imported_config("resnet32x4", "cifar100", "mdistiller", "ab" * 32)
    s = make_config("t", "cifar100", "resnet8x4", loss="kl", teachers=[t.run_id], dataset_options={"norm": "mdistiller"})
    rows = released._relabel(Table("x", "x", ("method", "top-1"), ({"method": "teacher resnet32x4", "top-1": cell([t])},
                                                                     {"method": "KD", "top-1": cell([s])}))).rows
    assert [r["method"] for r in rows] == ["teacher resnet32x4, released (mdistiller)", "KD"]
    wide = released._relabel(Table("y", "y", ("pair", "teacher ours", "KD ours"),
                                   ({"pair": "a", "teacher ours": cell([t]), "KD ours": cell([s])},)))
    assert wide.columns == ("pair", "teacher ours, released (mdistiller)", "KD ours")
    assert "teacher ours, released (mdistiller)" in wide.rows[0] and "released" in wide.note
