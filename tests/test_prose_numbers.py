"""Numbers in prose must come from the committed tables: every 'mean ± std' quoted in the README
and the results READMEs is a (mean, std) pair of some committed table's CSV, at the quoted
precision; every generated reading.md agrees with its claims.csv."""
import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROSE = [ROOT / "README.md", *sorted((ROOT / "results").glob("*/README.md"))]
PAIR = re.compile(r"(?<![\d.])([-\u2212]?\d+\.(\d+)) ± (\d+\.\d+)")   # prose writes minus as U+2212


def committed_pairs() -> set[tuple[str, str]]:
    """Every (mean, std) of every committed table, formatted at 1, 2 and 3 decimals."""
    out = set()
    for path in (ROOT / "results").rglob("*.csv"):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            for key, mean in row.items():
                if not (key and key.endswith("_mean")) or not mean:
                    continue
                std = row.get(key[: -len("_mean")] + "_std", "")
                if not std:
                    continue
                for d in (1, 2, 3):
                    out.add((f"{float(mean):.{d}f}", f"{float(std):.{d}f}"))
    return out


@pytest.mark.parametrize("path", PROSE, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_mean_and_std_is_in_a_committed_table(path):
    known = committed_pairs()
    text = path.read_text()
    quoted = [(m.group(1).replace("\u2212", "-"), m.group(3)) for m in PAIR.finditer(text)]
    missing = [f"{a} ± {b}" for a, b in quoted if (a, b) not in known]
    assert not missing, f"{path.name} quotes numbers no committed table holds: {missing}"


@pytest.mark.parametrize("reading", sorted((ROOT / "results").rglob("reading.md")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_generated_readings_match_their_claims(reading):
    with open(reading.parent / "claims.csv", newline="") as f:
        claims = list(csv.DictReader(f))
    text = reading.read_text()
    for c in claims:
        assert c["claim"] in text and c["we measured"] in text, c["#"]


# docs/papers.md holds the papers' facts and settings (not our measurements); docs/speed.md one-off
# profiles with their raw timings beside each ratio, dated in its text
DOCS = [*PROSE, *[p for p in sorted((ROOT / "docs").glob("*.md")) if p.name not in ("papers.md", "speed.md")]]
MEASURED = re.compile(r"(?<![\w.])[+\-\u2212]?\d+\.\d{2,}(?![\d])")     # a measurement: two or more decimals
# code spans (example messages), arXiv ids, versions
NOT_MEASURED = re.compile(r"`[^`]*`|arXiv \d{4}\.\d{4,5}|\d{4}\.\d{5}|(?:Python|torch|torchvision) \d+\.\d+(?:\.\d+)?")


def committed_text() -> str:
    """Everything a quoted measurement may come from: committed results, the papers' numbers, bench."""
    files = [*(ROOT / "results").rglob("*.csv"), *(ROOT / "results").rglob("*.md"),
             *(ROOT / "reproduce" / "numbers").glob("*.csv")]
    return "\n".join(p.read_text() for p in files if p.name != "README.md")


def _forms(token: str) -> set[str]:
    t = token.replace("\u2212", "-")
    value = float(t)
    digits = len(t.split(".")[1])
    return {t, t.lstrip("+"), f"{value:.{digits}f}", f"{value:+.{digits}f}", repr(value)[: len(t) + 2]}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_measurement_is_in_a_committed_file(path):
    """Every number with two or more decimals in the README, results READMEs and docs (a difference,
    an interval end, a mean, a timing) is found in a committed results file or a paper's numbers file."""
    text = committed_text()
    stale = [m.group(0) for m in MEASURED.finditer(NOT_MEASURED.sub("", path.read_text()))
             if not any(f in text for f in _forms(m.group(0)))]
    assert not stale, f"{path.name} quotes numbers no committed file holds: {stale}"


def test_readme_readings_are_generated_from_the_verdicts():
    from analysis.readings import END, START, block

    text = (ROOT / "README.md").read_text()
    current = START + text.partition(START)[2].partition(END)[0] + END
    assert current == block(ROOT), "README.md readings are stale: run python -m analysis.readings"
