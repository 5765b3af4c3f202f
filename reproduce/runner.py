"""The one runner of every paper: plan, dry run with costs, train what is missing, write the
manifests, render the tables, figures and claims.

    from reproduce.runner import Experiment, paper_main
    EXPERIMENT = Experiment("kl_vs_mse", ..., declare=declare)
    main = paper_main(EXPERIMENT)            # python -m reproduce.kl_vs_mse tau-sweep --profile mini

Commands of a paper script: one per declared section (its tables and figures), `teachers`
(every run that teaches another), `analyze` (manifests and renders, training nothing), `all`
(every section). Outputs: results/<paper>/<profile>/ (tables .md/.csv, figures .png, claims,
manifest/<name>.table.json, <name>.figure.json and claims.json, timings.csv); runs in the one store results/runs/<run-id>/.
"""
from __future__ import annotations

import csv
import json
import os
import re
import sys
import time
from dataclasses import dataclass, replace
from functools import partial
from importlib import resources
from pathlib import Path

from common import UserError
from common.files import atomic_write_text
from engine import RunConfig, RunDir, train_group
from engine.config import _jsonable
from engine.rundir import RESULTS_ROOT_ENV, atomic_write_bytes, check_results_root, check_writable, results_root
from engine.sweep import schedule
from losses import loss_label
from reproduce import costs
from reproduce.cli import Parser, command_line, main_guard, refuse_unused, threads_per_process
from reproduce.methods import config_words
from reproduce.plan import Best, Cell, Claim, Figure, PaperNumber, Plan, Section, Table, configs_of, runs_in
from reproduce.profiles import Profile, get_profile

TEACHERS, ANALYZE, ALL = "teachers", "analyze", "all"
DEMO = "demo"          # a section `make demo` runs at one seed; not part of `all`, no claims table


@dataclass(frozen=True)
class Experiment:
    """A paper script's declaration: its name, profiles and `declare(profile, seeds) -> Plan`."""
    name: str                      # results/<name>/, reproduce/numbers/<name>.csv, analysis/<name>.py
    title: str
    declare: object                # (Profile, seeds) -> Plan
    profiles: dict                 # name -> Profile, this paper's own (e.g. "paper") and shared ones
    default_profile: str = "mini"
    mini_profiles: tuple = ("mini",)   # what `make mini` runs
    demo_section: str | None = None    # the section `make demo` shows (one seed)
    extra_args: object = None          # (parser) -> None: flags of this script alone, given to declare as keywords

    def bind(self, extras: dict) -> "Experiment":
        """The experiment whose declare gets this script's own flags (`extra_args`)."""
        return self if not extras else replace(self, declare=partial(self.declare, **extras))

    def profile(self, name: str | None) -> Profile:
        name = name or self.default_profile
        if name not in self.profiles:
            raise UserError(f"{self.name} has no profile '{name}' (--profile, make PROFILE=); known: "
                            f"{', '.join(self.profiles)}")
        return get_profile(name, self.profiles)

    def plan(self, profile: str | None = None, seeds=None) -> Plan:
        p = self.profile(profile)
        return self.declare(p, tuple(seeds) if seeds else tuple(p.seeds))

    @property
    def target(self) -> str:
        return self.name.replace("_", "-")


# --- the numbers each paper reports ----------------------------------------------------
def numbers_file(paper: str):
    return resources.files("reproduce") / "numbers" / f"{paper}.csv"


def load_numbers(paper: str, path=None) -> dict:
    """reproduce/numbers/<paper>.csv: key -> {value, source, verified}. A repeated, empty or
    non-numeric key is a UserError naming the file and line: the last row would otherwise win."""
    f = path if path is not None else numbers_file(paper)
    if not f.is_file():
        return {}
    numbers, name = {}, f"reproduce/numbers/{paper}.csv" if path is None else str(path)
    with f.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"key", "value", "source", "verified"} <= set(reader.fieldnames or ()):
            raise UserError(f"{name} must have the columns key,value,source,verified; got {reader.fieldnames}")
        for r in reader:
            where, key = f"{name} line {reader.line_num}", (r["key"] or "").strip()
            if not key:
                raise UserError(f"{where}: empty key; give every row a key (or delete the row)")
            if key in numbers:
                raise UserError(f"{where}: key '{key}' is repeated (line {numbers[key]['line']} has it); "
                                f"keep one row per key")
            try:
                value = float(r["value"])
            except (TypeError, ValueError):
                raise UserError(f"{where}: key '{key}' has value {r['value']!r}, not a number; "
                                f"write the paper's number (e.g. 72.79)") from None
            if r["verified"] not in ("yes", "no"):
                raise UserError(f"{where}: key '{key}' has verified {r['verified']!r}; write yes or no")
            numbers[key] = {"value": value, "source": r["source"], "verified": r["verified"] == "yes",
                            "line": reader.line_num}
    return numbers


def _unknown(paper: str, key: str) -> UserError:
    return UserError(f"{paper}: no paper number '{key}' in reproduce/numbers/{paper}.csv; add a row for it "
                     f"or fix the key in reproduce/{paper}.py")


def resolve_number(p: PaperNumber, numbers: dict, paper: str) -> dict:
    if p.key is None:
        return {"value": None, "text": p.text, "unverified": p.unverified, "key": None, "source": ""}
    a = _number(p.key, numbers, paper)
    if p.minus is None:
        return {"value": a["value"], "text": "", "unverified": not a["verified"], "key": p.key, "source": a["source"]}
    b = _number(p.minus, numbers, paper)
    return {"value": round(a["value"] - b["value"], 6), "text": "", "unverified": not (a["verified"] and b["verified"]),
            "key": f"{p.key} - {p.minus}", "source": a["source"]}


def _number(key: str, numbers: dict, paper: str) -> dict:
    if ":" in key:          # another paper's number (e.g. the CIFAR pairs beside the mini ones)
        paper, key = key.split(":", 1)
        numbers = load_numbers(paper)
    if key not in numbers:
        raise _unknown(paper, key)
    return numbers[key]


def resolve_statement(text: str, numbers: dict, paper: str) -> str:
    """'{a} vs {b} (supp.)' with the numbers' values; ' [unverified]' once if any is."""
    keys = PLACEHOLDER.findall(text)
    for k in keys:
        if k not in numbers:
            raise _unknown(paper, k)
    out = PLACEHOLDER.sub(lambda m: f"{numbers[m.group(1)]['value']:.2f}", text)
    return out + (" [unverified]" if any(not numbers[k]["verified"] for k in keys) else "")


PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


# --- manifests -------------------------------------------------------------------------
def encode(x, numbers: dict, paper: str):
    """Declaration values as JSON: cells as run ids + metric, paper numbers resolved."""
    if isinstance(x, Cell):
        return {"cell": {"runs": x.run_ids(), "metric": x.metric, "digits": x.digits, "reduce": x.reduce,
                         "against": _against_ids(x),
                         **({"args": _jsonable(x.args)} if x.args else {}),
                         **({"minus": encode(x.minus, numbers, paper)["cell"]} if x.minus is not None else {})}}
    if isinstance(x, PaperNumber):
        return {"paper": resolve_number(x, numbers, paper)}
    if isinstance(x, Best):
        return {"best": [[name, encode(c, numbers, paper)] for name, c in x.options]}
    if isinstance(x, RunConfig):
        return {"run": x.run_id}
    if isinstance(x, dict):
        return {str(k): encode(v, numbers, paper) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [encode(v, numbers, paper) for v in x]
    return _jsonable(x)


def _against_ids(x: Cell):
    """A cell's `against` in its manifest: None, one run id, or {run id: the run id it is measured against}."""
    if isinstance(x.against, dict):
        return {c.run_id: x.against_of(c).run_id for c in x.runs if x.against_of(c) is not None}
    return x.against.run_id if x.against is not None else None


def describe(c: RunConfig, index: dict) -> str:
    """'cnn1d_student KL tau=20 seed 1 <- cnn1d_teacher CE seed 0' for listings and manifests."""
    if c.imported:
        from engine.imported import label

        return f"{c.model} {label(c)}"
    src = ""
    if c.teachers:
        src = " <- " + " + ".join(describe(index[t], index) if t in index else t for t in c.teachers)
    noise = "" if c.label_noise.tag == "clean" else f" {c.label_noise.tag}"
    return f"{c.model} {loss_label(c.loss, c.loss_hparams)}{noise} seed {c.seed}{src}"


def run_entries(runs: dict, index: dict) -> dict:
    """What runs.csv says of each run beside its numbers: its description, method, objective, teacher.
    A run is labelled "teacher" when a run of the plan distils it (a CE student is also trained without one)."""
    taught = {t for x in index.values() for t in x.teachers}
    return {rid: {"label": describe(c, index), "method": c.method or ("teacher" if rid in taught else config_words(c)),
                  "objective": config_words(c), "model": c.model, "seed": c.seed, "teachers": list(c.teachers)}
            for rid, c in sorted(runs.items())}


def manifest(plan: Plan, item, numbers: dict, index: dict) -> dict:
    runs = {c.run_id: c for c in runs_in(item.rows if isinstance(item, Table) else ())}
    runs |= {c.run_id: c for c in runs_in(item.data)}
    common = {"paper": plan.paper, "profile": plan.profile.name, "seeds": list(plan.seeds), "name": item.name,
              "runs": run_entries(runs, index)}
    if isinstance(item, Figure):
        return common | {"type": "figure", "kind": item.kind, "data": encode(item.data, numbers, plan.paper)}
    return common | {"type": "table", "kind": item.kind, "title": item.title, "note": item.note,
                     "statistic": item.statistic, "columns": list(item.columns),
                     "rows": encode(list(item.rows), numbers, plan.paper),
                     "data": encode(item.data, numbers, plan.paper)}


def claims_manifest(plan: Plan, numbers: dict, index: dict) -> dict:
    claims = []
    for c in plan.claims:
        claims.append({"text": c.text, "paper": resolve_statement(c.paper, numbers, plan.paper),
                       "a": encode(c.a, numbers, plan.paper), "b": encode(c.b, numbers, plan.paper),
                       "name_a": c.name_a, "name_b": c.name_b, "unit": c.unit, "kind": c.kind,
                       "data": encode(c.data, numbers, plan.paper), "reason": c.reason,
                       "direction": c.direction, "margin": c.margin, "family": c.family, "op": c.op,
                       "bound": c.bound})
    runs = {r.run_id: r for c in plan.claims for r in runs_in([c.a, c.b, c.data])}
    return {"paper": plan.paper, "profile": plan.profile.name, "seeds": list(plan.seeds), "type": "claims",
            "name": "claims", "title": plan.claims_title, "note": plan.claims_note, "statistic": plan.statistic,
            "claims": claims,
            "runs": run_entries(runs, index)}


def write_manifest(path: Path, obj: dict) -> None:
    """Keys in declaration order (rows, series and legends keep it), atomically."""
    atomic_write_bytes(path, (json.dumps(_jsonable(obj), indent=1, ensure_ascii=False) + "\n").encode())


def write_manifests(plan: Plan, sections, out: Path, index: dict, claims: bool = True) -> list[str]:
    """One JSON per table and figure of `sections` plus claims.json; returns their names in order."""
    numbers = load_numbers(plan.paper)
    folder = out / "manifest"
    names = []
    for s in sections:
        for item in (*s.tables, *s.figures):
            name = f"{item.name}.{'figure' if isinstance(item, Figure) else 'table'}"
            write_manifest(folder / f"{name}.json", manifest(plan, item, numbers, index))
            names.append(name)
    if claims and plan.claims:
        write_manifest(folder / "claims.json", claims_manifest(plan, numbers, index))
        names.append("claims")
    return names


# --- planning ----------------------------------------------------------------------------
def selected(plan: Plan, command: str) -> list[Section]:
    if command in (ALL, ANALYZE):
        return [s for s in plan.sections if s.name != DEMO]
    if command == TEACHERS:
        return []
    return [plan.section(command)]


def teachers_of(configs: list[RunConfig]) -> list[RunConfig]:
    """Every planned run that teaches another planned run (and, transitively, its teachers)."""
    by_id = {c.run_id: c for c in configs}
    todo = [t for c in configs for t in c.teachers]
    out = {}
    while todo:
        rid = todo.pop()
        if rid in by_id and rid not in out:
            out[rid] = by_id[rid]
            todo += list(by_id[rid].teachers)
    return list(out.values())


def plan_configs(plan: Plan, command: str) -> list[RunConfig]:
    """The runs a command needs, teachers included (a plan that forgets a teacher is refused)."""
    every = [c for s in plan.sections for c in configs_of(s)]
    if command == TEACHERS:
        configs = teachers_of(every)
    else:
        configs = [c for s in selected(plan, command) for c in configs_of(s)]
        if command in (ALL, ANALYZE):
            configs += [r for c in plan.claims for r in runs_in([c.a, c.b, c.data])]
    ids = {c.run_id for c in configs}
    unplanned = sorted({t for c in configs for t in c.teachers} - ids)
    if unplanned:
        raise UserError(f"{plan.paper} {command}: the plan uses teacher run(s) it does not plan: {', '.join(unplanned)}")
    return list({c.run_id: c for c in configs}.values())


# --- dry run -----------------------------------------------------------------------------
def dry_run(plan: Plan, stages, log=print, jobs: int | None = None) -> float:
    """List every run with its estimated cost and status; return the total cost in seconds."""
    gpu = plan.profile.device == "gpu"
    unit, scale = ("GPU-h", 3600.0) if gpu else ("CPU-min", 60.0)
    index = {c.run_id: c for s in stages for g in s for c in g}
    log(f"# {plan.paper}, {plan.profile.name} profile: {len(index)} runs in {sum(len(s) for s in stages)} groups; "
        f"cost: {costs.note(plan.profile)}")
    log(f"{'stage':>5} {'group':>5}  {'status':<8} {'model':<15} {'loss':<22} {'noise':<8} {'seed':>5} "
        f"{'epochs':>6} {'cost ' + unit:>12}  teacher")
    total = 0.0
    for si, stage in enumerate(stages):
        for gi, g in enumerate(stage):
            gcost = costs.group_cost_s(g)
            total += gcost
            for c in g:
                status = RunDir(c).status()
                teacher = " + ".join(describe(index[t], index) if t in index else t for t in c.teachers) or "-"
                what = describe(c, index).split(" ", 1)[1] if c.imported else loss_label(c.loss, c.loss_hparams)
                cost = 0.0 if c.imported else gcost / sum(not x.imported for x in g) / scale
                log(f"{si:>5} {gi:>5}  {status:<8} {c.model:<15} {what:<22} "
                    f"{c.label_noise.tag:<8} {c.seed:>5} {c.recipe['epochs']:>6} {cost:>12.2f}  "
                    f"{teacher}")
    jobs = jobs or default_jobs(plan.profile, "cpu")
    log(f"# total: {total / scale:.2f} {unit}"
        + (f" of one process; about {total / scale / jobs:.0f} wall-minutes with {jobs} processes"
           if not gpu and plan.profile.dataset != "synthetic" else ""))
    return total


# --- training ----------------------------------------------------------------------------
def default_jobs(profile: Profile, device: str) -> int:
    """A CPU profile on a CPU: one process per core (small models use a second thread poorly); else 1."""
    if profile.device != "cpu" or profile.dataset == "synthetic" or device.startswith("cuda"):
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _describe_group(group) -> str:
    c = group[0]
    losses = ", ".join(sorted({loss_label(x.loss, x.loss_hparams) for x in group}))
    models = "/".join(sorted({x.model for x in group}))
    src = f" <- {c.teachers[0].split('-')[0]}" if c.teachers else ""
    return f"[{models}{src} seed {c.seed} {c.label_noise.tag}: {losses}]"


def _timing(group, seconds) -> dict:
    c = group[0]
    return {"runs": len(group), "models": "/".join(sorted({x.model for x in group})), "seed": c.seed,
            "noise": c.label_noise.tag, "epochs": c.recipe["epochs"],
            "teacher": c.teachers[0].split("-")[0] if c.teachers else "", "seconds": round(seconds, 1)}


def train_missing(stages, *, jobs: int, quiet: bool, log=print, device: str = "auto", launcher: dict | None = None,
                  rerun: str | None = None, **train_kwargs) -> list[dict]:
    """Train every unfinished group: in this process stage by stage (jobs 1, local), over `jobs`
    worker processes (engine.sweep.run_parallel), or as Slurm jobs (engine.launch, `launcher`
    {"launcher": "slurm", ...}); groups that teach first, then the longest. Returns one timing row
    per trained group; raises UserError naming the groups that failed."""
    groups = [g for stage in stages for g in stage if not all(RunDir(c).finished for c in g)]
    if not groups:
        return []
    todo = sum(1 for g in groups for c in g if not RunDir(c).finished)
    launcher = dict(launcher or {"launcher": "local"})
    where = f"{jobs} process(es)" if launcher["launcher"] == "local" else "Slurm jobs"
    log(f"training {todo} run(s) in {len(groups)} group(s), {where}")
    kwargs = dict(train_kwargs, quiet=quiet, log_every=50)
    if jobs <= 1 and launcher["launcher"] == "local":
        timings = []
        for g in groups:        # stage order: teachers come first
            t0 = time.time()
            train_group(g, device=device, **kwargs)
            timings.append(_timing(g, time.time() - t0))
            log(f"  done {_describe_group(g)} in {time.time() - t0:.0f} s")
        return timings
    from engine.launch import launch
    from engine.sweep import split_groups

    if launcher["launcher"] == "local":
        groups = split_groups(groups, jobs, cost=costs.group_cost_s)    # where it shortens the schedule
    teaching = {t for g in groups for c in g for t in c.teachers}
    results = launch(groups, **launcher, jobs=jobs, device=device, threads=threads_per_process(), log=log,
                     priority=lambda g: (not any(c.run_id in teaching for c in g), -costs.group_cost_s(g)), **kwargs)
    bad = [(g, r) for g, r in zip(groups, results) if r["status"] in ("failed", "blocked")]
    if bad:
        first = next((r for _, r in bad if r["status"] == "failed"), bad[0][1])
        counts = ", ".join(f"{sum(r['status'] == s for r in results)} {s}" for s in ("ok", "done", "failed", "blocked"))
        raise UserError(f"{len(bad)} of {len(groups)} group(s) did not finish ({counts}); first error: "
                        f"{first['error']}; resume with: {rerun or 'the same command'} (--status lists the groups)")
    return [_timing(g, r["seconds"]) for g, r in zip(groups, results) if r["status"] == "ok"]


def write_timings(out: Path, timings: list[dict], wall: float, jobs: int) -> None:
    """Append this batch's rows to timings.csv (rewritten atomically: a kill never tears a row)."""
    import io

    path = out / "timings.csv"
    old = path.read_text() if path.exists() else ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*timings[0], "jobs", "batch_wall_s", "when"])
    if not old:
        writer.writeheader()
    stamp = time.strftime("%Y-%m-%d %H:%M")
    for t in timings:
        writer.writerow(t | {"jobs": jobs, "batch_wall_s": round(wall, 1), "when": stamp})
    atomic_write_text(path, old + buf.getvalue())


# --- one command -------------------------------------------------------------------------
def out_dir(plan: Plan) -> Path:
    return results_root() / plan.paper / plan.profile.name


def prepare(experiment: Experiment, command: str, profile: str | None = None, seeds=None,
            teachers=None) -> tuple[Plan, list]:
    """The plan and the runs one command needs (a UserError for a command the profile lacks, or a
    paper number missing from reproduce/numbers/<paper>.csv: found now, not after training);
    `teachers`: the --teachers values (reproduce/released.py; None: released ones at the paper
    profile when download_ckpts/ holds them)."""
    from reproduce import released

    if seeds is not None and (len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds)):
        raise UserError(f"--seeds {' '.join(map(str, seeds))}: give distinct seeds >= 0 (a repeated seed would "
                        "count one run twice in every mean)")
    mode, folder = released.parse(teachers)
    plan = experiment.plan(profile, seeds)
    if command not in (TEACHERS, ANALYZE, ALL) and command not in [s.name for s in plan.sections]:
        raise UserError(f"{experiment.name} has no command '{command}' at profile {plan.profile.name}")
    check_numbers(plan, selected(plan, command))
    plan = released.resolve(plan, mode, folder, {c.run_id for c in plan_configs(plan, command)})
    return plan, plan_configs(plan, command)


def check_numbers(plan: Plan, sections) -> None:
    """Every paper number the manifests of `sections` (and the claims) quote resolves by key."""
    numbers = load_numbers(plan.paper)
    for s in sections:
        for item in (*s.tables, *s.figures):
            manifest(plan, item, numbers, {})
    if plan.claims:
        claims_manifest(plan, numbers, {})


def train(configs: list[RunConfig], *, profile: Profile, jobs: int | None = None, device: str = "auto",
          data_root=None, download: bool = False, quiet: bool = False, launcher: dict | None = None,
          timings_dir: Path | None = None, log=print, wandb: bool = False, rerun: str | None = None,
          shipped: bool = False) -> None:
    """Validate every unfinished config and the results root, then train them (teachers first),
    logging timings. `rerun`: the command that resumes this one, for the failure summary;
    `shipped`: copy the teachers shipped in models/shipped/ into the store instead of training them."""
    from reproduce.released import import_missing

    import_missing(configs, log)                       # released teachers: imported, never trained
    if shipped:
        from engine.shipped import unpack_shipped

        check_results_root()
        unpack_shipped(configs, log)
    todo = [c for c in configs if not RunDir(c).finished]
    if todo and (launcher or {}).get("precheck", True):
        from engine.validate import validate_configs

        validate_configs(todo, data_root, download)      # every bad input before anything is trained
    if todo:
        check_results_root()
    jobs = jobs or default_jobs(profile, device)
    t0 = time.time()
    timings = train_missing(schedule(configs), jobs=jobs, quiet=quiet, log=log, device=device, data_root=data_root,
                            download=download, launcher=launcher, rerun=rerun, **({"wandb": True} if wandb else {}))
    if timings:
        log(f"trained {sum(t['runs'] for t in timings)} run(s) in {time.time() - t0:.0f} s wall")
        if timings_dir is not None:
            write_timings(timings_dir, timings, time.time() - t0, jobs)
    from engine.fit import write_fit

    for c in configs:       # how each teacher fits its training set (the regime table reads it)
        if c.is_teacher and RunDir(c).finished and write_fit(c, data_root):
            log(f"  measured the fit of {c.run_id} on its training set")


def render_command(plan: Plan, command: str, out: Path) -> list[Path]:
    """Write the manifests of a command's sections (and the claims) and render them."""
    from analysis.render import render

    index = {c.run_id: c for s in plan.sections for c in configs_of(s)}
    sections = selected(plan, command)
    names = write_manifests(plan, sections, out, index, claims=command in (ALL, ANALYZE) or command != DEMO and all(s.claims for s in sections))
    return render(out, names)


def run(experiment: Experiment, command: str, *, profile: str | None = None, seeds=None, device: str = "auto",
        data_root=None, download: bool = False, quiet: bool = False, dry: bool = False, jobs: int | None = None,
        out: Path | None = None, launcher: dict | None = None, status: bool = False, log=print,
        wandb: bool = False, teachers=None, rerun: str | None = None) -> list[Path]:
    """Train what `command` needs (unless dry or analyze) and render its outputs; returns the files written.
    `status`: list the command's groups as queued / running / done / failed (from the run store) instead."""
    plan, configs = prepare(experiment, command, profile, seeds, teachers)
    if dry:
        dry_run(plan, schedule(configs), log, jobs)
        return []
    if status:
        from engine.launch import format_status

        log(format_status(status_rows(configs)))
        return []
    out = Path(out) if out is not None else out_dir(plan)
    if command != ANALYZE:
        train(configs, profile=plan.profile, jobs=jobs, device=device, data_root=data_root, download=download,
              quiet=quiet, launcher=launcher, timings_dir=out, log=log, rerun=rerun, wandb=wandb)
    if command == TEACHERS:
        return []
    check_writable(out, "output folder", f"set {RESULTS_ROOT_ENV} to a folder you can write, with free space")
    return render_command(plan, command, out)


def status_rows(configs: list[RunConfig]) -> list[dict]:
    from engine.launch import status as group_status

    return group_status([g for stage in schedule(configs) for g in stage])


# --- command line ------------------------------------------------------------------------
def build_parser(experiment: Experiment, module_doc: str) -> Parser:
    commands = [TEACHERS, *[s.name for s in experiment.plan("smoke" if "smoke" in experiment.profiles
                                                             else None).sections], ANALYZE, ALL]
    p = Parser(prog=f"python -m reproduce.{experiment.name}", description=module_doc,
               formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("command", choices=commands, help="what to run (trains what is missing, then its tables)")
    p.add_argument("--profile", default=experiment.default_profile, choices=list(experiment.profiles),
                   help=f"scale (default {experiment.default_profile})")
    p.add_argument("--seeds", type=int, nargs="+", help="student seeds (default: the profile's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    p.add_argument("--data-root", help="data folder (default $LOGIT_KD_DATA or ./data_cache)")
    p.add_argument("--download", action="store_true", help="let torchvision download the data set (paper profile)")
    p.add_argument("--jobs", type=int, help="training processes (default: one per core for a CPU profile, else 1)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument("--dry-run", action="store_true", help="list every run with its estimated cost; train nothing")
    p.add_argument("--status", action="store_true",
                   help="list the command's groups as queued / running / done / failed, from the run store alone")
    p.add_argument("--teachers", nargs="+", metavar=("train|released", "DIR"),
                   help="released [DIR]: import the papers' released teachers from DIR (default download_ckpts: "
                        "mdistiller's cifar_teachers/, torchvision/) instead of training them; train: train every "
                        "teacher (default, except at the paper profile when DIR holds the files)")
    p.add_argument("--wandb", action="store_true",
                   help="also log every run's per-epoch scalars to Weights & Biases, offline (TensorBoard always)")
    from engine.launch import add_launcher_args

    add_launcher_args(p)
    known = {a.dest for a in p._actions}
    if experiment.extra_args is not None:
        experiment.extra_args(p)
    p.extra_dests = [a.dest for a in p._actions if a.dest not in known]
    return p


def check_options(args, launcher: dict) -> None:
    """Refuse the options that do not apply to what the command line asks (never ignore them).
    --dry-run previews the command it is added to, so it takes that command's options."""
    if args.status and args.dry_run:
        raise UserError("--status lists the groups from the run store and --dry-run lists the runs with their "
                        "costs: give one of them")
    mode = ("--status reads the run store" if args.status else
            "analyze renders, training nothing" if args.command == ANALYZE and not args.dry_run else None)
    if mode is None:
        return
    unused = {"--jobs": args.jobs is not None, "--quiet": args.quiet, "--download": args.download,
              "--data-root": args.data_root is not None, "--device": args.device != "auto",
              "--launcher and the Slurm flags": len(launcher) > 1 or launcher["launcher"] != "local"}
    refuse_unused(unused, mode)


def paper_main(experiment: Experiment, module_doc: str = ""):
    """The `main(argv)` of a paper script."""
    @main_guard
    def main(argv=None):
        argv = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser(experiment, module_doc)
        args = parser.parse_args(argv)
        bound = experiment.bind({k: getattr(args, k) for k in parser.extra_dests})
        from engine.launch import format_status, launcher_options
        from engine.sweep import check_jobs

        launcher = launcher_options(args)
        check_options(args, launcher)
        check_jobs(args.jobs, launcher["launcher"])
        if args.wandb:
            from engine.tblog import require_wandb

            require_wandb()
        if args.status:           # exit status as the sweep's: 1 unless every group is done
            rows = status_rows(prepare(bound, args.command, args.profile, args.seeds, args.teachers)[1])
            print(format_status(rows))
            if any(r["status"] != "done" for r in rows):
                sys.exit(1)
            return []
        start = time.time()
        written = run(bound, args.command, profile=args.profile, seeds=args.seeds, device=args.device,
                      data_root=args.data_root, quiet=args.quiet, dry=args.dry_run, jobs=args.jobs,
                      download=args.download, launcher=launcher, wandb=args.wandb, teachers=args.teachers,
                      rerun=command_line(experiment.name, argv))
        for path in written:
            print(f"wrote {path}")
        if not args.dry_run:
            print(f"{args.command} ({args.profile}) finished in {time.time() - start:.0f} s")
        return written

    return main


def to_json(x) -> str:
    return json.dumps(_jsonable(x), indent=1)
