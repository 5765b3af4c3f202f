"""`make demo` at smoke scale: the same code path, seconds."""
from reproduce.demo import STUDENTS, main as demo_main


def test_demo_writes_its_tables(results, tmp_path, capsys):
    demo_main(["--profile", "smoke", "--quiet"])
    table = (tmp_path / "results" / "demo" / "engine_table.md").read_text()
    for label, _, _ in STUDENTS:
        assert label in table
    assert "teacher" in table
    assert "demo finished" in capsys.readouterr().out
