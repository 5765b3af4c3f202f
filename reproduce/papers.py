"""Every paper experiment of the repository, and the commands that span them.

    python -m reproduce.papers list                  # papers, their profiles and commands
    python -m reproduce.papers mini [--seeds 0 1 2]  # every paper's mini experiments (make mini), as one schedule
    python -m reproduce.papers teachers --profile paper --dry-run
    python -m reproduce.papers help                  # the make targets of each paper, grouped

A paper joins by adding its module name to PAPERS (its script declares an `EXPERIMENT`).
"""
from __future__ import annotations

import importlib
import sys
import time

from common import UserError
from engine.sweep import check_jobs
from reproduce import costs
from reproduce.cli import Parser, command_line, main_guard, refuse_unused
from engine.rundir import RunDir, results_root
from engine.sweep import schedule
from reproduce.runner import ALL, ANALYZE, DEMO, TEACHERS, Experiment, dry_run, out_dir, prepare, render_command, train

PAPERS = ("kl_vs_mse", "many_class", "decoupled_kl", "logit_distortion", "compare")


def experiments() -> list[Experiment]:
    return [importlib.import_module(f"reproduce.{name}").EXPERIMENT for name in PAPERS]


def commands(e: Experiment) -> list[str]:
    """A paper's section commands (without teachers/analyze/all), in declaration order."""
    profile = "smoke" if "smoke" in e.profiles else None
    return [s.name for s in e.plan(profile).sections if s.name != DEMO]


def print_help(log=print) -> None:
    for e in experiments():
        log(f"\n{e.title}  (default PROFILE={e.default_profile}; profiles: {', '.join(e.profiles)})")
        log(f"  make {e.target:<30} every table, figure and the claims -> results/{e.name}/<profile>/")
        for c in commands(e):
            log(f"  make {e.target + '.' + c:<30} one section")
        log(f"  make {e.target + '.teachers':<30} its teachers only; .analyze re-renders without training")


@main_guard
def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = Parser(prog="python -m reproduce.papers", description=__doc__)
    p.add_argument("command", choices=("list", "help", "mini", TEACHERS, ALL, ANALYZE))
    p.add_argument("--profile", help="for teachers/all/analyze: the profile (default: each paper's own)")
    p.add_argument("--seeds", type=int, nargs="+", help="student seeds (default: the profile's)")
    p.add_argument("--jobs", type=int, help="training processes")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    check_options(args)
    if args.command in ("list", "help"):
        if args.command == "help":
            return print_help()
        for e in experiments():
            print(f"{e.name}: profiles {', '.join(e.profiles)} (default {e.default_profile}, mini: "
                  f"{', '.join(e.mini_profiles)}); commands {', '.join(commands(e))}")
        return None
    todo = []
    for e in experiments():
        if args.command == "mini":
            todo += [(e, ALL, prof) for prof in e.mini_profiles]
        elif args.profile is None or args.profile in e.profiles:
            todo.append((e, args.command, args.profile))
    return run_together(todo, args, command_line("papers", argv))


def check_options(args) -> None:
    """Refuse an unknown profile and every option that does not apply to the command."""
    c = args.command
    training = {"--jobs": args.jobs is not None, "--device": args.device != "auto",
                "--data-root": args.data_root is not None}
    if c in ("list", "help"):
        refuse_unused({**training, "--profile": args.profile is not None, "--seeds": args.seeds is not None,
                       "--quiet": args.quiet, "--dry-run": args.dry_run}, f"{c} prints the papers and their commands")
    if c == "mini":
        refuse_unused({"--profile": args.profile is not None}, "mini runs every paper's own mini profiles "
                      "(one profile: make teachers PROFILE=... or make <paper> PROFILE=...)")
    if c == ANALYZE and not args.dry_run:       # --dry-run previews a command: it takes that command's options
        refuse_unused(training, "analyze renders, training nothing")
    known = sorted({name for e in experiments() for name in e.profiles})
    if args.profile is not None and args.profile not in known:
        raise UserError(f"unknown profile '{args.profile}' for --profile; known: {', '.join(known)}")
    check_jobs(args.jobs)


def run_together(todo, args, rerun: str | None = None) -> list:
    """Every (experiment, command, profile) of `todo` planned first, their runs trained as one
    schedule (teachers first, groups over one worker per core, runs shared by several papers once),
    then each rendered."""
    start = time.time()
    prepared = [(e, command, *prepare(e, command, profile, args.seeds)) for e, command, profile in todo]
    if args.dry_run:
        for _, _, plan, configs in prepared:
            dry_run(plan, schedule(configs), jobs=args.jobs)
        distinct = list({c.run_id: c for *_, cs in prepared for c in cs}.values())
        unfinished = [c for c in distinct if RunDir(c).status() != "done"]
        print(f"# together: {len(distinct)} distinct runs, about {schedule_cost_s(distinct) / 60:.0f} CPU-minutes "
              f"(shared runs once); not finished in this run store: {len(unfinished)} runs, about "
              f"{schedule_cost_s(unfinished) / 60:.0f} CPU-minutes")
        return []
    configs = list({c.run_id: c for *_, cs in prepared for c in cs}.values())
    profile = prepared[0][2].profile
    train(configs, profile=profile, jobs=args.jobs, device=args.device, data_root=args.data_root, quiet=args.quiet,
          timings_dir=results_root() / "timings" / args.command, rerun=rerun)
    print(f"== trained in {time.time() - start:.0f} s", flush=True)
    written = []
    for e, command, plan, _ in prepared:
        if command != TEACHERS:
            written += render_command(plan, command, out_dir(plan))
            print(f"== {e.name} ({plan.profile.name}): rendered", flush=True)
    print(f"== {args.command} finished in {time.time() - start:.0f} s", flush=True)
    return written


def schedule_cost_s(configs) -> float:
    """Estimated CPU-seconds of training `configs` as one schedule (each group pays its teacher forward once)."""
    return sum(costs.group_cost_s(g) for stage in schedule(configs) for g in stage)


if __name__ == "__main__":
    main()
