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

import csv
import hashlib
import importlib
import io
import json
import math
from pathlib import Path

import pandas as pd

from analysis import evidence as ev, metrics
from analysis.runs import load_runs, run_path
from analysis.tables import MISSING, Paper, Stat, Table, caption, stat_from_values
from common import UserError
from common.files import atomic_write_text
from engine.config import from_jsonable
from engine.rundir import atomic_write_bytes

RUNS_CSV, CHECKS_CSV = "runs.csv", "checks.csv"
BASE_COLUMNS = ("run_id", "tables", "method", "objective", "model", "seed", "teacher", "final_test_top1",
                "last10_test_top1", "best_test_top1", "final_train_top1")


def read_manifest(path: Path) -> dict:
    try:
        return from_jsonable(json.loads(Path(path).read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"manifest {path} is damaged ({e.__class__.__name__}); rerun the paper script's command "
                        "for its section (e.g. `make <paper>.<section>`) to write it again") from e


def against_id(c: dict, run_id: str | None = None) -> str | None:
    """The run a cell's metric of run `run_id` is measured against: the cell's one `against` run,
    or, where `against` maps run ids to runs (each run against its own seed's), `run_id`'s."""
    a = c.get("against")
    return a.get(run_id) if isinstance(a, dict) else a


def metric_key(c: dict, run_id: str | None = None) -> str:
    """The runs.csv column of a cell's metric (of run `run_id`): the metric, its arguments, the run
    it is measured against."""
    key = c["metric"]
    args = c.get("args") or {}
    if args:
        plain = {k: v for k, v in sorted(args.items()) if isinstance(v, (int, float, str, bool))}
        key += "(" + ",".join(f"{k}={v}" for k, v in plain.items())
        if len(plain) < len(args):      # long arguments (a class hierarchy) by a digest
            key += ("," if plain else "") + hashlib.sha1(json.dumps(args, sort_keys=True).encode()).hexdigest()[:8]
        key += ")"
    against = against_id(c, run_id)
    if against:
        key += f"@{against}"
    return key


class Context:
    """What a renderer needs: the manifests' runs, their outputs, the profile. Values come from the
    run store, or (`runs_csv`) from a committed runs.csv alone, where figures and tables computed
    from saved outputs cannot be drawn but every cell, interval and verdict can."""

    def __init__(self, out: Path, manifests: list[dict], runs_csv: Path | None = None):
        self.out = Path(out)
        self.from_csv = runs_csv is not None
        ids = [rid for m in manifests for rid in m.get("runs", {})]
        self.df = load_runs(ids) if runs_csv is None else csv_runs(runs_csv)
        self.recorded: dict = {}          # run id -> {column: value}: this render's runs.csv values
        self.checks: dict = {} if runs_csv is None else read_checks(Path(runs_csv).parent / CHECKS_CSV)
        self._outputs: dict = {}
        first = manifests[0] if manifests else {}
        self.paper, self.profile, self.seeds = first.get("paper"), first.get("profile"), tuple(first.get("seeds", ()))

    # ---------------------------------------------------------------- runs
    def files(self, run_id: str | None) -> metrics.RunFiles | None:
        """The saved files of a finished run (None when it is absent or unfinished, or from runs.csv)."""
        if run_id is None or self.from_csv:
            return None
        if run_id not in self._outputs:
            path = run_path(self.df, run_id)
            self._outputs[run_id] = None if path is None else metrics.RunFiles(path)
        return self._outputs[run_id]

    def outputs(self, run_id: str | None):
        f = self.files(run_id)
        return None if f is None else f.outputs

    def finished(self, run_id: str) -> bool:
        return run_id in self.df.index and bool(self.df.loc[run_id, "finished"])

    def run_value(self, run_id: str, c: dict):
        """One run's value of a cell's metric (None when absent), recorded for runs.csv."""
        if not self.finished(run_id):
            return None
        key = metric_key(c, run_id)
        if self.from_csv:
            v = self.df.loc[run_id, key] if key in self.df.columns else None
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
        if c.get("reduce") == "first" or metrics.is_derived(c["metric"]):
            f = self.files(run_id)
            v = None if f is None or (f.outputs is None and not f.metrics) else \
                metrics.compute(c["metric"], f, self.files(against_id(c, run_id)), c.get("args"))
        else:
            v = self.df.loc[run_id, key] if key in self.df.columns else None
        if isinstance(v, float) and math.isnan(v):
            v = None
        self.recorded.setdefault(run_id, {})[key] = v
        return v

    def values_by_seed(self, c: dict) -> dict:
        """{seed: value} of a cell's metric over its finished runs; a paired difference (`minus`):
        seed by seed (a `minus` of one run, e.g. one teacher for every seed, is subtracted from each)."""
        c = c.get("cell", c)
        if c.get("minus"):
            a, b = self.values_by_seed(c | {"minus": None}), self.values_by_seed(c["minus"])
            if len(c["minus"]["runs"]) == 1 and b:
                return {s: v - next(iter(b.values())) for s, v in a.items()}
            return {s: a[s] - b[s] for s in sorted(a) if s in b}
        out = {}
        for rid in c["runs"]:
            v = self.run_value(rid, c)
            if v is not None:
                out[int(self.df.loc[rid, "seed"])] = float(v)
        return out

    def stat(self, c: dict) -> Stat:
        """mean ± std of a cell's metric over its finished runs ('missing' when none); a paired
        difference (`minus`) over the seeds both cells have."""
        c = c.get("cell", c)
        if c.get("minus"):
            return stat_from_values(list(self.values_by_seed(c).values()), len(c["runs"]), c["digits"])
        values = [self.run_value(rid, c) for rid in c["runs"]]
        return stat_from_values([v for v in values if v is not None], len(c["runs"]), c["digits"])

    def interval(self, c: dict) -> str:
        """A paired difference as 'Δ [low, high]' (its 95 % interval over seeds), or 'missing'."""
        c = c.get("cell", c)
        iv = ev.contrast(self.values_by_seed(c | {"minus": None}), self.values_by_seed(c["minus"]))
        if iv is None:
            return MISSING
        if iv.how == "one run a side":
            return f"{iv.diff:+.{c['digits']}f} (1 run)"
        return f"{iv.diff:+.{c['digits']}f} [{iv.low:+.{c['digits']}f}, {iv.high:+.{c['digits']}f}]"

    def first(self, c: dict) -> str:
        """The metric of the first run that has it, as text (e.g. a feature dimension)."""
        c = c.get("cell", c)
        for rid in c["runs"]:
            v = self.run_value(rid, c)
            if isinstance(v, float) and v.is_integer():
                v = str(int(v))     # runs.csv reads a sparse text column (e.g. "320") back as a float
            if v is not None:
                return v
        return MISSING

    def value(self, v):
        """A manifest value as a table cell: Stat, Paper or text."""
        if isinstance(v, dict) and "cell" in v:
            reduce = v["cell"].get("reduce")
            return self.first(v) if reduce == "first" else self.interval(v) if reduce == "interval" else self.stat(v)
        if isinstance(v, dict) and "paper" in v:
            return paper_value(v)
        return v

    def caption(self, m: dict, title: str | None = None) -> str:
        return caption(title if title is not None else m["title"], profile=m["profile"], seeds=m["seeds"],
                       statistic=m.get("statistic", "final epoch"), note=m.get("note", ""))


def csv_runs(path: Path) -> pd.DataFrame:
    """A committed runs.csv as the run table (every row a finished run)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no {path}: render from the run store instead, or rerun the paper script")
    df = pd.read_csv(path, dtype={"run_id": str})
    df["finished"] = True
    return df.set_index("run_id", drop=False)


def read_checks(path: Path) -> dict:
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {r["check"]: (r["measured"], r["verdict"]) for r in csv.DictReader(f)}


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


def best_name(ctx: Context, c: dict) -> str | None:
    """The option a claim's `best` side picked (either side may be one), for its {best} placeholders."""
    for side in (c.get("a"), c.get("b")):
        if isinstance(side, dict) and "best" in side:
            return pick(ctx, side)[1]
    return None


def side_values(ctx: Context, side) -> dict:
    if side is None:
        return None
    if isinstance(side, dict) and "best" in side:
        _, best = pick(ctx, side)
        return ctx.values_by_seed(dict(side["best"])[best])
    return ctx.values_by_seed(side)


# --- claims: one protocol (analysis/evidence.py) ---------------------------------------------
KINDS = {   # kind -> (heading in reading.md, its verdicts in order)
    "contrast": ("Contrasts: A against B, paired 95 % intervals over seeds",
                 (ev.SUPPORTED, ev.CONTRADICTED, ev.EQUIVALENT, ev.INCONCLUSIVE)),
    "check": ("Checks: exact identities", ("holds", "fails")),
    "threshold": ("Thresholds: a quantity against a bound, 95 % interval over its runs", ("met", "not met", "inconclusive")),
    "choice": ("Validation choices (a choice, never a held claim)", ("chosen", "tie", "not chosen")),
    "order": ("Orders: two rankings compared by their means (descriptive)", ("same order", "different order")),
    "not run": ("Not run at this profile", ("not run",)),
}


def contrast_row(ctx: Context, c: dict, p_adjusted: float | None, family_size: int) -> tuple[str, str]:
    a, b = side_values(ctx, c["a"]), side_values(ctx, c["b"])
    iv = ev.contrast(a, b)
    if iv is None:
        return MISSING, MISSING
    unit, name = c.get("unit", ""), c["name_a"] if c["b"] is None else f"{c['name_a']} − {c['name_b']}"
    text = f"{name.replace('{best}', best_name(ctx, c) or '')}: {iv.text(unit)}"
    if p_adjusted is not None:
        text += f"; Holm p = {p_adjusted:.3g} over {family_size}"
    if c.get("margin"):
        text += f"; margin ± {c['margin']:g}{unit}"
    return text, ev.verdict(iv, c.get("direction", ">"), c.get("margin", 0.0), p_adjusted)


def family_p(ctx: Context, claims: list) -> dict:
    """{claim index: Holm-adjusted p} for claims declared in a family of two or more."""
    families: dict = {}
    for k, c in enumerate(claims):
        if c["kind"] == "contrast" and c.get("family"):
            families.setdefault(c["family"], []).append(k)
    out = {}
    for ks in families.values():
        if len(ks) < 2:
            continue
        ivs = [ev.contrast(side_values(ctx, claims[k]["a"]), side_values(ctx, claims[k]["b"])) for k in ks]
        ps = ev.holm([math.nan if iv is None or math.isnan(iv.p) else iv.p for iv in ivs])
        out |= {k: (p, len(ks)) for k, p in zip(ks, ps) if not math.isnan(p)}
    return out


def threshold_row(ctx: Context, c: dict) -> tuple[str, str]:
    """Met when the interval of the mean lies on the bound's side (one run: its value, said so)."""
    values = list(side_values(ctx, c["a"]).values())
    if not values:
        return MISSING, MISSING
    op, bound, unit = c["op"], c["bound"], c.get("unit", "")
    ok = (lambda x: x >= bound) if op == ">=" else (lambda x: x <= bound)
    if len(values) == 1:
        return (f"{c['name_a']} {values[0]:.2f}{unit} (1 run; bound {op} {bound:g}{unit})",
                "met" if ok(values[0]) else "not met")
    iv = ev.threshold_interval(values)
    text = f"{c['name_a']} {iv.diff:.2f}{unit}, 95 % CI [{iv.low:.2f}, {iv.high:.2f}] (n = {len(values)}; bound {op} {bound:g}{unit})"
    lo_ok, hi_ok = ok(iv.low), ok(iv.high)
    return text, "met" if lo_ok and hi_ok else "not met" if not lo_ok and not hi_ok else "inconclusive"


def choice_row(ctx: Context, c: dict) -> tuple[str, str]:
    """The declared setting against the grid: chosen (best mean, its paired interval against the
    runner-up above 0), tie (that interval holds 0), not chosen (another setting above it)."""
    options = c["a"]["best"]
    values = {name: ctx.values_by_seed(cell) for name, cell in options}
    declared = c["name_a"]
    if any(not v for v in values.values()) or declared not in values:
        return MISSING, MISSING
    means = {n: ev.mean(list(v.values())) for n, v in values.items()}
    n = min(len(v) for v in values.values())
    ranked = sorted(means, key=lambda k: -means[k])
    best, other = ranked[0], ranked[1] if ranked[0] == declared else ranked[0]
    iv = ev.contrast(values[declared], values[other])
    grid = " / ".join(f"{k} {means[k]:.2f}" for k, _ in options)
    edge = declared in (options[0][0], options[-1][0])
    text = f"{grid} ({n} seed(s) each); declared {declared} − {other}: {iv.text()}"
    if best != declared and iv.high < 0:
        verdict = "not chosen"
    elif best == declared and iv.low > 0:
        verdict = "chosen"
    else:
        verdict = "tie"
    if edge and verdict != "not chosen":
        text += "; at the edge of its grid"
    return text, verdict


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
    return f"{name_a}: {text(oa, sa)}; {name_b}: {text(ob, sb)}", "same order" if oa == ob else "different order"


def check_row(ctx: Context, c: dict, module) -> tuple[str, str]:
    if ctx.from_csv:
        return ctx.checks.get(c["text"], (MISSING, MISSING))
    found, verdict = module.CHECKS[c["data"]["check"]](ctx, c["data"])
    verdict = {"yes": "holds", "no": "fails"}.get(verdict, verdict)
    ctx.checks[c["text"]] = (found, verdict)
    return found, verdict


def claims_table(ctx: Context, m: dict, module) -> Table:
    note = f"{ev.RULE} 'missing' = the runs are not there." + (f" {m['note']}" if m.get("note") else "")
    t = Table("claims", ctx.caption(m | {"note": note}, m.get("title", "Claims.")),
              ["#", "kind", "claim", "paper says", "we measured", "verdict"])
    holm = family_p(ctx, m["claims"])
    for k, c in enumerate(m["claims"], start=1):
        kind = c["kind"]
        if kind == "not run":
            found, verdict = c["reason"], "not run"
        elif kind == "check":
            found, verdict = check_row(ctx, c, module)
        elif kind == "choice":
            found, verdict = choice_row(ctx, c)
        elif kind == "order":
            found, verdict = same_order(ctx, c["data"]["first"], c["data"]["second"], c["name_a"], c["name_b"])
        elif kind == "threshold":
            found, verdict = threshold_row(ctx, c)
        elif kind == "contrast":
            p, size = holm.get(k - 1, (None, 0))
            found, verdict = contrast_row(ctx, c, p, size)
        else:
            raise ValueError(f"claim {k}: unknown kind '{kind}'")
        best = best_name(ctx, c) if kind == "contrast" else None
        text = c["text"].replace("{best}", best) if best else c["text"]
        t.add({"#": k, "kind": kind, "claim": text, "paper says": c["paper"], "we measured": found, "verdict": verdict})
    return t


def write_reading(table: Table, m: dict, out: Path) -> Path:
    """reading.md: the claims grouped by kind, then verdict, generated from the claims table (so
    prose that quotes it never goes stale); a choice or a threshold never sits under a contrast."""
    lines = [f"# What the {m['profile']} runs say ({m['paper']}; generated from claims.md)", "",
             f"Seeds: {', '.join(map(str, m['seeds']))} ({len(m['seeds'])}). {ev.RULE}", ""]
    for kind, (heading, verdicts) in KINDS.items():
        rows = [r for r in table.rows if r["kind"] == kind]
        if not rows:
            continue
        lines += [f"## {heading}", ""]
        for verdict in (*verdicts, MISSING):
            these = [r for r in rows if r["verdict"] == verdict]
            if these:
                lines += [f"### {verdict} ({len(these)})", ""]
                lines += [f"- **{r['claim']}** — ours: {r['we measured']}; paper: {r['paper says']} (claim {r['#']})"
                          for r in these]
                lines.append("")
    path = out / "reading.md"
    atomic_write_text(path, "\n".join(lines))
    return path


# --- runs.csv: every number a table or verdict uses, one row per run ------------------------------
def write_runs_csv(ctx: Context, out: Path) -> Path:
    """results/<paper>/<profile>/runs.csv: one row per run of any manifest of the folder, with every
    metric a cell or claim of this render read (rows of earlier renders kept for runs still used)."""
    folder = out / "manifest"
    every = [read_manifest(p) for p in sorted(folder.glob("*.json"))]
    entries, tables = {}, {}
    for m in every:
        for rid, e in m.get("runs", {}).items():
            entries[rid] = e if isinstance(e, dict) else {"label": e}      # a legacy manifest: its label only
            tables.setdefault(rid, []).append(m["name"])
    path = out / RUNS_CSV
    old = pd.read_csv(path, dtype={"run_id": str}).set_index("run_id") if path.is_file() else pd.DataFrame()
    rows = []
    for rid, e in entries.items():
        base = {"run_id": rid, "tables": ";".join(sorted(set(tables[rid]))),
                "method": e.get("method", ""), "objective": e.get("objective", ""), "model": e.get("model", ""),
                "seed": e.get("seed", ""), "teacher": "+".join(e.get("teachers", []))}
        values = {}
        if rid in old.index:
            values |= {k: v for k, v in old.loc[rid].items() if k not in base and not _blank(v)}
        if ctx.finished(rid):
            for key in BASE_COLUMNS[7:]:
                if key in ctx.df.columns and not _blank(ctx.df.loc[rid, key]):
                    values[key] = float(ctx.df.loc[rid, key])
        values |= {k: v for k, v in ctx.recorded.get(rid, {}).items() if v is not None}
        if values:
            rows.append(base | values)
    columns = list(BASE_COLUMNS) + sorted({k for r in rows for k in r} - set(BASE_COLUMNS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for r in sorted(rows, key=lambda r: (r["tables"], r["method"], r["model"], r["seed"], r["run_id"])):
        writer.writerow({k: _fmt(v) for k, v in r.items()})
    atomic_write_bytes(path, buf.getvalue().encode())
    return path


def write_checks_csv(ctx: Context, out: Path) -> Path | None:
    if not ctx.checks:
        return None
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["check", "measured", "verdict"])
    for text, (found, verdict) in ctx.checks.items():
        writer.writerow([text, found, verdict])
    path = out / CHECKS_CSV
    atomic_write_bytes(path, buf.getvalue().encode())
    return path


def _blank(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v == ""


def _fmt(v):
    return repr(float(v)) if isinstance(v, float) else v


# --- everything --------------------------------------------------------------------------
def render(out: Path, names: list[str] | None = None, runs_csv: Path | None = None) -> list[Path]:
    """Render the manifests `names` (default: all) of out/manifest/; returns the files written.
    `runs_csv`: values from that file instead of the run store (cells tables and claims only)."""
    out = Path(out)
    folder = out / "manifest"
    if names is None:
        names = sorted(p.stem for p in folder.glob("*.json"))
        names = [n for n in names if n != "claims"] + (["claims"] if "claims" in names else [])
    manifests = [read_manifest(folder / f"{n}.json") for n in names]
    if not manifests:
        return []
    ctx = Context(out, manifests, runs_csv)
    module = module_of(ctx.paper)
    written: list[Path] = []
    for m in manifests:
        if m["type"] == "figure":
            if not ctx.from_csv:
                written.append(module.FIGURES[m["kind"]](ctx, m, out / f"{m['name']}.png"))
            continue
        if m["type"] == "claims":
            table = claims_table(ctx, m, module)
            written.append(write_reading(table, m, out))
        elif m["kind"] == "cells":
            table = cells_table(ctx, m)
        elif ctx.from_csv:
            continue
        else:
            table = module.TABLES[m["kind"]](ctx, m)
        written += list(table.write(out))
    if not ctx.from_csv:
        written.append(write_runs_csv(ctx, out))
        if {p.name[: -len(".json")] for p in folder.glob("*.json")} <= set(names):
            (out / "LEGACY.md").unlink(missing_ok=True)     # every table re-rendered under the protocol
        checks = write_checks_csv(ctx, out)
        written += [checks] if checks else []
    return written


def finite(x) -> bool:
    return isinstance(x, (int, float)) and not math.isnan(x)
