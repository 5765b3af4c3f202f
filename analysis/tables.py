"""Tables from run directories: mean ± std over seeds, the paper's number beside ours.

A table cell that holds our measurement is a `Stat` over the runs of one row (one run id
per seed). Runs that are absent or unfinished do not count; a cell without any finished
run prints `missing` (and an empty mean with n = 0 in the CSV), never 0. A paper value is
a `Paper` (number, `[unverified]` where reproduce/numbers/<paper>.csv says so) or absent (`–`,
not reported).

    stat = seed_stat(df, run_ids, "final_test_top1")
    table = Table("tau_sweep", caption, ["student", "loss", "test top-1 %", "paper"])
    table.add({"student": "cnn1d_student", "loss": "kl", "test top-1 %": stat, "paper": Paper(74.24)})
    table.write(out_dir)          # tau_sweep.md and tau_sweep.csv

Markdown: the caption, then the table. CSV: one column per plain cell; a `Stat` column
`c` becomes `c_mean`, `c_std`, `c_n`, `c_expected`; a `Paper` column becomes `c` and
`c_unverified`.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from common.files import atomic_file, atomic_write_text

MISSING = "missing"
NOT_REPORTED = "–"


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float           # sample std (ddof 1) over seeds; NaN with one seed
    n: int               # finished runs found
    expected: int        # runs the row asks for (one per seed)
    digits: int = 2
    values: tuple = ()

    @property
    def missing(self) -> bool:
        return self.n == 0

    def __str__(self) -> str:
        if self.missing:
            return MISSING
        text = f"{self.mean:.{self.digits}f}"
        if self.n > 1:
            text += f" ± {self.std:.{self.digits}f}"
        if self.n < self.expected:
            text += f" ({self.n}/{self.expected} seeds)"
        elif self.n == 1 and self.expected == 1:
            text += " (1 run)"
        return text


@dataclass(frozen=True)
class Paper:
    value: float | None
    unverified: bool = False
    digits: int = 2
    text: str = ""        # shown when there is no number (e.g. a qualitative claim)

    def __str__(self) -> str:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return (self.text + (" [unverified]" if self.unverified else "")) if self.text else NOT_REPORTED
        return f"{self.value:.{self.digits}f}" + (" [unverified]" if self.unverified else "")


def seed_stat(df: pd.DataFrame, run_ids, metric: str, digits: int = 2) -> Stat:
    """Mean and sample std of `metric` over the finished runs among `run_ids`."""
    run_ids = list(run_ids)
    values = []
    if len(df) and metric in df.columns:
        for rid in run_ids:
            if rid in df.index and bool(df.loc[rid, "finished"]):
                v = df.loc[rid, metric]
                if v is not None and not (isinstance(v, float) and math.isnan(v)):
                    values.append(float(v))
    return stat_from_values(values, len(run_ids), digits)


def stat_from_values(values, expected: int, digits: int = 2) -> Stat:
    """A Stat over per-seed values already computed (e.g. from outputs.pt)."""
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(values)
    mean = sum(values) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return Stat(mean, std, n, expected, digits, tuple(values))


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


@dataclass
class Table:
    name: str                      # file stem
    caption: str
    columns: list
    rows: list = field(default_factory=list)

    def add(self, row: dict) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise KeyError(f"table {self.name} has no columns {sorted(unknown)}")
        self.rows.append(row)

    def cell(self, row: dict, column: str) -> str:
        value = row.get(column, "")
        if isinstance(value, float):
            return MISSING if math.isnan(value) else f"{value:g}"
        return str(value)

    def to_markdown(self) -> str:
        lines = [f"**{self.name}.** {self.caption}", "",
                 "| " + " | ".join(_escape(c) for c in self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        for row in self.rows:
            lines.append("| " + " | ".join(_escape(self.cell(row, c)) for c in self.columns) + " |")
        return "\n".join(lines) + "\n"

    def csv_rows(self) -> tuple[list[str], list[dict]]:
        header, out = [], []
        for c in self.columns:
            kinds = {type(r.get(c)) for r in self.rows}
            if Stat in kinds:
                header += [f"{c}_mean", f"{c}_std", f"{c}_n", f"{c}_expected"]
            elif Paper in kinds:
                header += [c, f"{c}_unverified"]
            else:
                header.append(c)
        for r in self.rows:
            d = {}
            for c in self.columns:
                v = r.get(c, "")
                if isinstance(v, Stat):
                    d |= {f"{c}_mean": "" if v.missing else round(v.mean, 6),
                          f"{c}_std": "" if v.n < 2 else round(v.std, 6), f"{c}_n": v.n, f"{c}_expected": v.expected}
                elif isinstance(v, Paper):
                    d |= {c: "" if v.value is None else v.value, f"{c}_unverified": v.unverified}
                else:
                    d[c] = v
            out.append(d)
        return header, out

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        md, csv_path = out_dir / f"{self.name}.md", out_dir / f"{self.name}.csv"
        atomic_write_text(md, self.to_markdown())
        header, rows = self.csv_rows()
        with atomic_file(csv_path, "w") as f:
            writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        return md, csv_path


def caption(what: str, *, profile: str, seeds, statistic: str = "final epoch", note: str = "") -> str:
    """'<what>. Profile mini; seeds 0, 1, 2 (3); statistic: final epoch; mean ± sample std over seeds. <note>'"""
    seeds = list(seeds)
    text = (f"{what} Profile **{profile}**; seeds {', '.join(map(str, seeds))} ({len(seeds)} per cell unless "
            f"marked); statistic: {statistic}, mean ± sample std over seeds; 'missing' = no finished run.")
    return text + (f" {note}" if note else "")


def compare(a: Stat, b: Stat, k: float = 2.0) -> tuple[str, float, float]:
    """Is a > b? 'yes' if mean(a) - mean(b) > k * SE, 'no' if < -k * SE, else 'inconclusive';
    SE = sqrt(std_a^2 / n_a + std_b^2 / n_b). A side with one run (a teacher) contributes no
    variance; when neither side has two runs there is no spread to judge by: 'inconclusive'.
    'missing' without data."""
    if a.missing or b.missing:
        return MISSING, math.nan, math.nan
    var = lambda s: 0.0 if s.n < 2 else s.std ** 2 / s.n  # noqa: E731
    diff, se = a.mean - b.mean, math.sqrt(var(a) + var(b))
    if a.n < 2 and b.n < 2:
        return "inconclusive", diff, se
    if diff > k * se and diff > 0:
        return "yes", diff, se
    if diff < -k * se and diff < 0:
        return "no", diff, se
    return "inconclusive", diff, se
