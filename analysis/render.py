"""Render the manifests of one output folder: tables (Markdown + CSV), figures, claims.

    python -m analysis results/kl_vs_mse/mini          # every manifest in results/kl_vs_mse/mini/manifest/

A manifest (written by the paper scripts when they plan) says what each table cell is made of:
run ids, the metric, the number of digits, the paper's number and its source. Rendering reads
those files and the run directories they name (config.json, summary.json, outputs.pt) and
nothing else. Tables of kind "cells", and the claims, render generically; other tables and
every figure are drawn by the paper's module analysis/<paper>.py (`TABLES`, `FIGURES`,
`CHECKS` dicts of functions taking (ctx, manifest[, path])).
"""
from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

from analysis import metrics
from analysis.runs import load_runs, run_path
from analysis.tables import MISSING, Paper, Stat, Table, caption, compare, seed_stat, stat_from_values
from common.files import atomic_write_text
from engine.config import from_jsonable

RULE = "yes if mean(A) − mean(B) > 2 SE, no if < −2 SE, else inconclusive; SE = √(s_A²/n_A + s_B²/n_B) over seeds"


def read_manifest(path: Path) -> dict:
    return from_jsonable(json.loads(Path(path).read_text()))


class Context:
    """What a renderer needs: the manifests' runs as a DataFrame, their outputs, the profile."""

    def __init__(self, out: Path, manifests: list[dict]):
        self.out = Path(out)
        ids = [rid for m in manifests for rid in m.get("runs", {})]
        self.df = load_runs(ids)
        self._outputs: dict = {}
        first = manifests[0] if manifests else {}
        self.paper, self.profile, self.seeds = first.get("paper"), first.get("profile"), tuple(first.get("seeds", ()))

    # ---------------------------------------------------------------- runs
    def files(self, run_id: str | None) -> metrics.RunFiles | None:
        """The saved files of a finished run (None when it is absent or unfinished)."""
        if run_id is None:
            return None
        if run_id not in self._outputs:
            path = run_path(self.df, run_id)
            self._outputs[run_id] = None if path is None else metrics.RunFiles(path)
        return self._outputs[run_id]

    def outputs(self, run_id: str | None):
        f = self.files(run_id)
        return None if f is None else f.outputs

    def values_by_seed(self, c: dict) -> dict:
        """{seed: value} of a cell's metric over its finished runs."""
        out = {}
        for rid in c["runs"]:
            v = self.stat({**c, "runs": [rid], "minus": None})
            if not v.missing:
                out[int(self.df.loc[rid, "seed"])] = v.mean
        return out

    def stat(self, c: dict) -> Stat:
        """mean ± std of a cell's metric over its finished runs ('missing' when none); a paired
        difference (`minus`) over the seeds both cells have."""
        c = c.get("cell", c)
        if c.get("minus"):
            a, b = self.values_by_seed(c), self.values_by_seed(c["minus"])
            return stat_from_values([a[s] - b[s] for s in sorted(a) if s in b], len(c["runs"]), c["digits"])
        runs, metric, digits = c["runs"], c["metric"], c["digits"]
        if not metrics.is_derived(metric):
            return seed_stat(self.df, runs, metric, digits)
        against = self.files(c.get("against"))
        values = [metrics.compute(metric, f, against, c.get("args")) for f in map(self.files, runs)
                  if f is not None and (f.outputs is not None or f.metrics)]
        return stat_from_values(values, len(runs), digits)

    def first(self, c: dict) -> str:
        """The metric of the first run that has outputs, as text (e.g. a feature dimension)."""
        c = c.get("cell", c)
        for f in map(self.files, c["runs"]):
            if f is not None and f.outputs is not None:
                return metrics.compute(c["metric"], f, self.files(c.get("against")), c.get("args"))
        return MISSING

    def value(self, v):
        """A manifest value as a table cell: Stat, Paper or text."""
        if isinstance(v, dict) and "cell" in v:
            return self.first(v) if v["cell"].get("reduce") == "first" else self.stat(v)
        if isinstance(v, dict) and "paper" in v:
            return paper_value(v)
        return v

    def caption(self, m: dict, title: str | None = None) -> str:
        return caption(title if title is not None else m["title"], profile=m["profile"], seeds=m["seeds"],
                       statistic=m.get("statistic", "final epoch"), note=m.get("note", ""))


def paper_value(v: dict) -> Paper:
    p = v["paper"]
    return Paper(p["value"], p["unverified"], text=p.get("text", ""))


def module_of(paper: str | None):
    try:
        return importlib.import_module(f"analysis.{paper}") if paper else None
    except ModuleNotFoundError as e:
        if e.name != f"analysis.{paper}":
            raise
        return None


# --- tables ------------------------------------------------------------------------------
def cells_table(ctx: Context, m: dict) -> Table:
    t = Table(m["name"], ctx.caption(m), m["columns"])
    for row in m["rows"]:
        t.add({col: ctx.value(v) for col, v in row.items()})
    return t


def pick(ctx: Context, side) -> tuple[Stat, str | None]:
    """A claim side: a cell's Stat, or the best present option of a `best` (its name too)."""
    if isinstance(side, dict) and "best" in side:
        options = [(name, ctx.stat(c)) for name, c in side["best"]]
        present = [(n, s) for n, s in options if not s.missing]
        if not present:
            return options[0][1], options[0][0]
        return max(present, key=lambda ns: ns[1].mean)[::-1]
    return ctx.stat(side), None


def measured(a: Stat, b: Stat, name_a: str, name_b: str, unit: str = "") -> str:
    if a.missing or b.missing:
        return f"{name_a}: {a}; {name_b}: {b}"
    return f"{name_a} {a}{unit} vs {name_b} {b}{unit} (Δ = {a.mean - b.mean:+.2f})"


def shifted(s: Stat, by: float) -> Stat:
    """The same Stat with its mean moved by `by` (a claim 'A beats B by more than m')."""
    return s if not by or s.missing else Stat(s.mean + by, s.std, s.n, s.expected, s.digits, s.values)


def threshold(a: Stat, name: str, op: str, bound: float, unit: str = "") -> tuple[str, str]:
    """Every seed's value on the right side of `bound`: yes; every one on the wrong side: no."""
    if a.missing:
        return f"{name}: {a}", MISSING
    ok = [(v >= bound) if op == ">=" else (v <= bound) for v in (a.values or (a.mean,))]
    verdict = "yes" if all(ok) else "no" if not any(ok) else "inconclusive"
    return f"{name} {a}{unit} (bound {op} {bound:g}{unit})", verdict


def declared_best(ctx: Context, options: dict, declared: str) -> tuple[str, str]:
    """Is the declared option the best one (highest mean)? yes; no when the best beats it by
    more than 2 SE; else inconclusive."""
    stats = {name: ctx.stat(c) for name, c in options["best"]}
    if declared not in stats or stats[declared].missing:
        return f"declared {declared}: missing", MISSING
    picked, best = pick(ctx, options)
    found = f"best: {best} {picked}; declared: {declared} {stats[declared]}"
    if best == declared or stats[declared].mean >= picked.mean:       # a tie counts as the best
        return found, "yes"
    return found, "no" if compare(picked, stats[declared])[0] == "yes" else "inconclusive"


def same_order(ctx: Context, first: list, second: list, name_a: str, name_b: str) -> tuple[str, str]:
    """Do two lists of (name, cell) rank their names in the same order (by mean)?"""
    def order(options):
        stats = [(name, ctx.stat(c)) for name, c in options]
        if any(s.missing for _, s in stats):
            return None, stats
        return [n for n, _ in sorted(stats, key=lambda ns: -ns[1].mean)], stats

    (oa, sa), (ob, sb) = order(first), order(second)
    if oa is None or ob is None:
        return MISSING, MISSING
    text = lambda o, st: " > ".join(f"{n} {dict(st)[n].mean:.2f}" for n in o)  # noqa: E731
    return f"{name_a}: {text(oa, sa)}; {name_b}: {text(ob, sb)}", "yes" if oa == ob else "no"


def claims_table(ctx: Context, m: dict, module) -> Table:
    note = f"Rule for A > B claims: {RULE}; 'A not below B': no if B > A by that rule, else yes. " \
           "'missing' = the runs are not there." + (
        f" {m['note']}" if m.get("note") else "")
    t = Table("claims", ctx.caption(m | {"note": note}, m.get("title", "Claims.")),
              ["#", "claim", "paper says", "we measured", "agrees?"])
    for k, c in enumerate(m["claims"], start=1):
        text = c["text"]
        if c["kind"] == "not run":
            found, verdict = c["reason"], "not run"
        elif c["kind"] == "check":
            found, verdict = module.CHECKS[c["data"]["check"]](ctx, c["data"])
        elif c["kind"] == "best":
            found, verdict = declared_best(ctx, c["a"], c["name_a"])
        elif c["kind"] == "same_order":
            found, verdict = same_order(ctx, c["data"]["first"], c["data"]["second"], c["name_a"], c["name_b"])
        elif c["kind"] == "positive":            # a paired difference above 0 by 2 SE
            a = ctx.stat(c["a"])
            found = f"{c['name_a']} {a}{c.get('unit', '')} (paired over {a.n} seed(s))" if not a.missing else MISSING
            verdict = compare(a, Stat(0.0, 0.0, a.n, a.n))[0]
        elif c["kind"] == "not_below":
            a, b = ctx.stat(c["a"]), ctx.stat(c["b"])
            found = measured(a, b, c["name_a"], c["name_b"], c.get("unit", ""))
            verdict = {"yes": "no", "no": "yes", "inconclusive": "yes"}.get(compare(b, a)[0], MISSING)
        elif c["kind"] == "threshold":
            found, verdict = threshold(ctx.stat(c["a"]), c["name_a"], c["op"], c["bound"], c.get("unit", ""))
        else:
            (a, best_a), (b, best_b) = pick(ctx, c["a"]), pick(ctx, c["b"])
            best = best_a or best_b
            name_a, name_b = c["name_a"], c["name_b"]
            if best is not None:
                text, name_a, name_b = (s.replace("{best}", best) for s in (text, name_a, name_b))
            margin = c.get("margin", 0.0)
            found = measured(a, b, name_a, name_b, c.get("unit", "")) + (f"; margin {margin:g}" if margin else "")
            verdict = compare(a, shifted(b, margin))[0]
        t.add({"#": k, "claim": text, "paper says": c["paper"], "we measured": found, "agrees?": verdict})
    return t


VERDICTS = (("yes", "Held (difference beyond 2 SE in the paper's direction)"),
            ("no", "Contradicted (beyond 2 SE the other way)"),
            ("inconclusive", "Inconclusive (within 2 SE, or one run a side)"),
            ("missing", "Not measured yet (runs missing)"), ("not run", "Not run at this profile"))


def write_reading(table: Table, m: dict, out: Path) -> Path:
    """reading.md: the claims grouped by verdict, generated from the claims table (so prose that
    quotes it never goes stale)."""
    lines = [f"# What the {m['profile']} runs say ({m['paper']}; generated from claims.md)", "",
             f"{len(m['seeds'])} seed(s) per cell: {', '.join(map(str, m['seeds']))}. Rule: {RULE}.", ""]
    for verdict, heading in VERDICTS:
        rows = [r for r in table.rows if r["agrees?"] == verdict]
        if rows:
            lines += [f"## {heading}", ""]
            lines += [f"- **{r['claim']}** — ours: {r['we measured']}; paper: {r['paper says']} (claim {r['#']})"
                      for r in rows]
            lines.append("")
    path = out / "reading.md"
    atomic_write_text(path, "\n".join(lines))
    return path


# --- everything --------------------------------------------------------------------------
def render(out: Path, names: list[str] | None = None) -> list[Path]:
    """Render the manifests `names` (default: all) of out/manifest/; returns the files written."""
    out = Path(out)
    folder = out / "manifest"
    if names is None:
        names = sorted(p.stem for p in folder.glob("*.json"))
        names = [n for n in names if n != "claims"] + (["claims"] if "claims" in names else [])
    manifests = [read_manifest(folder / f"{n}.json") for n in names]
    if not manifests:
        return []
    ctx = Context(out, manifests)
    module = module_of(ctx.paper)
    written: list[Path] = []
    for m in manifests:
        if m["type"] == "figure":
            written.append(module.FIGURES[m["kind"]](ctx, m, out / f"{m['name']}.png"))
            continue
        if m["type"] == "claims":
            table = claims_table(ctx, m, module)
            written.append(write_reading(table, m, out))
        elif m["kind"] == "cells":
            table = cells_table(ctx, m)
        else:
            table = module.TABLES[m["kind"]](ctx, m)
        written += list(table.write(out))
    return written


def finite(x) -> bool:
    return isinstance(x, (int, float)) and not math.isnan(x)
