"""`make demo` at smoke scale: the same code path, seconds."""
from reproduce.demo import main as demo_main
from reproduce.kl_vs_mse import DEMO_TAUS
from reproduce.papers import experiments


def test_demo_writes_each_papers_headline(results, capsys):
    demo_main(["--profile", "smoke", "--quiet"])
    out = capsys.readouterr().out
    for e in experiments():
        if e.demo_section is None:
            continue
        folder = results / "demo" / e.name
        assert any(folder.glob("*.md")) and any(folder.glob("*.png")), e.name
        assert f"{e.name}: wrote" in out
    table = (results / "demo" / "kl_vs_mse" / "headline.md").read_text()
    for label in ("CE", "KL tau=20", "LMSE", "teacher"):
        assert label in table
    rows = [ln for ln in table.splitlines() if ln.startswith("| ")][1:]   # after the header
    # teacher, CE, LMSE and one row per demo tau
    assert len(rows) == 3 + len(DEMO_TAUS) and not any("missing" in ln for ln in rows) and "demo finished" in out


def test_demo_reuses_finished_runs(results, capsys):
    demo_main(["--profile", "smoke", "--quiet"])
    capsys.readouterr()
    demo_main(["--profile", "smoke"])
    assert "training" not in capsys.readouterr().out
