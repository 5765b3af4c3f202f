"""Train a list of run configs: here (one worker per GPU, or N one-thread CPU workers) or on Slurm.

    python -m reproduce.sweep configs.json                 # every GPU, or one worker per CPU core
    python -m reproduce.sweep configs.json --jobs 2 --dry-run
    python -m reproduce.sweep configs.json --launcher slurm --partition gpu --gpus-per-job 1 --time 240
    python -m reproduce.sweep configs.json --status        # queued / running / done / failed per group

configs.json: a JSON list of run configs (`RunConfig.to_dict()`), e.g. written by a paper script
with `engine.sweep.save_configs(configs, path)`. Teachers train before their students, finished
runs are skipped, a failing group is reported and the others go on (engine/sweep.py). With
`--launcher slurm` each group of runs is one Slurm job submitted through submitit (engine/launch.py;
a worked example: docs/cluster.md); the command waits for the sweep and can be rerun at any time
(it re-attaches to its queued jobs, skips finished runs, resumes the others from checkpoints).

Exit status: 1 when any group failed or was blocked by a failed teacher (the summary lists them
and the command that resumes the sweep); with --status, 1 unless every group is done; 2 for a
user error (one line: a bad config file, option or results folder); 128 + the signal for
Ctrl-C, SIGTERM, SIGHUP (workers stopped, runs resumable). A worker that dies fails only its
own group.
"""
import sys

from common import UserError
from engine.launch import add_launcher_args, format_status, launch, launcher_options, status
from engine.rundir import check_results_root
from engine.sweep import check_jobs, load_configs, schedule
from reproduce.cli import Parser, command_line, main_guard, refuse_unused


def build_parser() -> Parser:
    import argparse

    p = Parser(prog="python -m reproduce.sweep", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", help="JSON list of run configs")
    p.add_argument("--jobs", type=int, help="local: worker processes (default: one per GPU, else one per CPU "
                   "core); slurm: most jobs queued or running at once (default: no limit)")
    p.add_argument("--device", default="auto", help="auto (GPUs when present), cpu, cuda")
    p.add_argument("--threads", type=int, help="torch threads per CPU worker (default 1; slurm: --cpus-per-task)")
    p.add_argument("--data-root", help="data folder (default $LOGIT_KD_DATA or ./data_cache)")
    p.add_argument("--dry-run", action="store_true", help="list the groups and their status, train nothing")
    p.add_argument("--status", action="store_true",
                   help="list each group as queued / running / done / failed, from the run store alone")
    add_launcher_args(p)
    return p


@main_guard
def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    options = launcher_options(args)
    launcher_flags = len(options) > 1 or options["launcher"] != "local"
    if args.status and args.dry_run:
        raise UserError("--status reads the run store and --dry-run lists the groups: give one of them")
    if args.status:
        refuse_unused({"--jobs": args.jobs is not None, "--threads": args.threads is not None,
                       "--data-root": args.data_root is not None, "--device": args.device != "auto",
                       "--launcher and the Slurm flags": launcher_flags}, "--status reads the run store")
    if args.dry_run:
        refuse_unused({"--launcher and the Slurm flags": launcher_flags}, "--dry-run lists the groups, submitting nothing")
    check_jobs(args.jobs, options["launcher"])
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    configs = load_configs(args.configs)
    if args.status:
        rows = status(configs)
        print(format_status(rows))
        if any(r["status"] != "done" for r in rows):
            sys.exit(1)
        return rows
    if args.dry_run:
        rows = {tuple(r["runs"]): r for r in status(configs)}
        for si, stage in enumerate(schedule(configs)):
            for g in stage:
                row = rows[tuple(c.run_id for c in g)]
                print(f"stage {si}: {len(g)} run(s) [{row['status']}]: {', '.join(c.run_id for c in g)}")
        return []
    check_results_root()
    results = launch(configs, **options, jobs=args.jobs, device=args.device, threads=args.threads,
                     data_root=args.data_root)
    summarize(results, command_line("sweep", argv))
    if any(r["status"] in ("failed", "blocked") for r in results):
        sys.exit(1)
    return results


def summarize(results: list[dict], rerun: str) -> None:
    """What finished, what failed (one line each, on stderr) and the command that resumes the rest."""
    bad = [r for r in results if r["status"] in ("failed", "blocked")]
    counts = {s: sum(r["status"] == s for r in results) for s in ("ok", "done", "failed", "blocked")}
    print("sweep: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + " group(s)")
    for r in bad:
        print(f"  {r['status']}: {', '.join(r['runs'])}: {r['error']}", file=sys.stderr)
    if bad:
        print(f"sweep: {len(bad)} group(s) did not finish; resume with: {rerun}", file=sys.stderr)


if __name__ == "__main__":
    main()
