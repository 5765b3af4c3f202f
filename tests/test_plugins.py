"""A researcher's own loss in the comparison (reproduce/plugins.py, losses/plugins.py), end to end
at smoke scale: its rows, claims and runs; spawned workers that find it; every mistake one line."""
import csv
import json

import pytest

from losses import LOSSES
from losses import plugins as loaded

L1 = '''
from losses import LOSSES, DistillLoss


@LOSSES.register("l1")
class L1(DistillLoss):
    name = "l1"

    def __init__(self, scale: float = 1.0):
        super().__init__(scale=scale)
        self.scale = scale

    def forward(self, zs, zt, targets):
        return self.scale * (zs - zt).abs().mean()
'''


@pytest.fixture
def isolated(results, monkeypatch):
    """Whatever a test loads is gone afterwards (registry, loaded files, $LOGIT_KD_PLUGINS)."""
    monkeypatch.setattr(LOSSES, "_factories", dict(LOSSES._factories))
    monkeypatch.setattr(loaded, "_LOADED", {})
    monkeypatch.delenv(loaded.PLUGINS_ENV, raising=False)
    return results


def compare(*args):
    from reproduce.compare import main

    return main(["table", "--profile", "smoke", "--quiet", *args])


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_own_loss_joins_the_comparison_and_workers_find_it(isolated, tmp_path, capsys):
    plugin = tmp_path / "l1_loss.py"
    plugin.write_text(L1)
    compare("--plugin", str(plugin), "--method", "l1:ce_weight=0.5", "--jobs", "1")
    out = isolated / "compare" / "smoke"
    objective = "0.5 CE + 1 x [L1(scale 1)], warm-up 8 epochs"       # the pair's warm-up, KD weight 1
    table = (out / "comparison.md").read_text()
    assert sum(f"| l1 | {objective} |" in line for line in table.splitlines()) == 2    # one row per pair
    assert "l1 beats KD on" in (out / "claims.md").read_text()
    forest = json.loads((out / "manifest" / "comparison.figure.json").read_text())
    assert sum(r["method"] == "l1" for r in forest["data"]["rows"]) == 2
    mine = [r for r in rows(out / "runs.csv") if r["method"] == "l1"]
    assert len(mine) == 2 and {r["objective"] for r in mine} == {objective}
    config = json.loads((isolated / "runs" / mine[0]["run_id"] / "config.json").read_text())
    assert config["plugin"] == loaded.sha256(plugin) and config["recipe"]["ce_weight"] == 0.5

    # spawned workers import the file from $LOGIT_KD_PLUGINS (new l1 runs); every other run is reused
    capsys.readouterr()
    compare("--plugin", str(plugin), "--method", "l1:ce_weight=0.5,scale=2", "--method", "kl:tau=2,warmup=0",
            "--jobs", "2")
    assert "training 4 run(s)" in capsys.readouterr().out
    assert {r["objective"] for r in rows(out / "runs.csv") if r["method"] == "l1"} == {objective.replace("1)", "2)")}
    kl = [r for r in rows(out / "runs.csv") if r["method"] == "kl"]
    assert {r["objective"] for r in kl} == {"1 CE + 1 x [tau^2 KL(tau 2)]"} and len(kl) == 2
    assert all(json.loads((isolated / "runs" / r["run_id"] / "config.json").read_text()).get("plugin") is None
               for r in kl)                                                   # a built-in loss: shared run ids


BAD = {
    "missing": (None, "no such file"),
    "not python": ("notes.txt", "not a Python file"),
    "syntax": ("x = (\n", "SyntaxError on import"),
    "raises": ("raise RuntimeError('no\\ndata')\n", "RuntimeError on import: no data"),
    "registers nothing": ("y = 1\n", "registers no loss"),
    "built-in loss name": (L1.replace('"l1"', '"kl"'), "loss 'kl' registered twice"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_plugin_file_is_one_line_and_writes_nothing(case, isolated, tmp_path, capsys):
    text, message = BAD[case]
    plugin = tmp_path / ("notes.txt" if text == "notes.txt" else "mine.py")
    if text is not None:
        plugin.write_text(text)
    before = set(LOSSES._factories)
    with pytest.raises(SystemExit) as e:
        compare("--plugin", str(plugin), "--method", "l1")
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err
    assert set(LOSSES._factories) == before and not isolated.exists()


@pytest.mark.parametrize("methods, message", [
    (["KD"], "taken by the comparison's method 'KD'"),           # a plugin loss named like a built-in method
    (["l1", "l1:scale=2"], "given twice"),
    (["l1:p=2"], "has no hyperparameter p"),
    (["l1:scale=2:x"], "l1:scale=2:x: TypeError"),             # the constructor lets it through, a trial step not
    (["l1:scale"], "is not key=value"),
    (["l1:kd_weight=0"], "kd_weight must be a finite number > 0"),
    (["l1:warmup=1.5"], "warmup must be an integer >= 0"),
    (["ce"], "taken by the comparison's method 'CE'"),
    ([], "--plugin without --method adds nothing"),
])
def test_a_bad_method_is_one_line(methods, message, isolated, tmp_path, capsys):
    plugin = tmp_path / "mine.py"
    plugin.write_text(L1 + L1.replace('"l1"', '"KD"').replace("class L1", "class KD"))
    with pytest.raises(SystemExit):
        compare("--plugin", str(plugin), *[a for m in methods for a in ("--method", m)])
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not isolated.exists()


def test_method_without_its_plugin_and_plugin_on_other_scripts_are_refused(isolated, tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare("--method", "l1")
    assert "no loss 'l1' is registered; give the file that registers it with --plugin" in capsys.readouterr().err
    from reproduce.kl_vs_mse import main

    with pytest.raises(SystemExit):
        main(["tau-sweep", "--profile", "smoke", "--plugin", str(tmp_path / "mine.py")])
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unrecognized arguments: --plugin" in err


def test_method_string_defaults_and_values():
    from reproduce.plugins import parse_method
    from reproduce.decoupled_kl import Pair

    pair = Pair("t", "s", "13", "smoke", 1.0, 1.0, 8.0, warmup=5)
    m = parse_method("kl:tau=4.0,alpha=1,rescale_small_tau=true")
    assert m.hparams == {"rescale_small_tau": True}               # defaults left out: the papers' run ids
    assert m.objective(pair).overrides() == {"ce_weight": 1.0, "kd_weight": 1.0, "warmup_epochs": 5}
    m = parse_method("kl:ce_weight=0,kd_weight=2,warmup=0")
    assert m.objective(pair).overrides() == {"ce_weight": 0.0, "kd_weight": 2.0, "warmup_epochs": 0}


def test_the_registry_imports_exported_files_on_first_use(isolated, tmp_path, monkeypatch):
    """What a spawned worker or a Slurm job does: only $LOGIT_KD_PLUGINS, the name, nothing loaded."""
    from losses import build_loss

    plugin = tmp_path / "mine.py"
    plugin.write_text(L1)
    monkeypatch.setenv(loaded.PLUGINS_ENV, str(plugin))
    assert "l1" not in LOSSES._factories
    assert build_loss("l1", scale=2.0).scale == 2.0
    assert loaded.source_sha256("l1") == loaded.sha256(plugin)
