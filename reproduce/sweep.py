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

Exit status: 1 when any group failed or was blocked by a failed teacher; with --status, 1 unless
every group is done.
"""
import sys

from common import UserError
from engine.launch import add_launcher_args, format_status, launch, launcher_options, status
from engine.sweep import load_configs, schedule
from reproduce.cli import Parser, main_guard


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
    args = build_parser().parse_args(argv)
    options = launcher_options(args)
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    launcher_flags = len(options) > 1 or options["launcher"] != "local"
    if (args.status or args.dry_run) and launcher_flags or (args.status and args.dry_run):
        raise UserError("--status reads the run store and --dry-run lists the groups: neither takes launcher "
                        "flags, and they do not go together")
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
    results = launch(configs, **options, jobs=args.jobs, device=args.device, threads=args.threads,
                     data_root=args.data_root)
    bad = [r for r in results if r["status"] in ("failed", "blocked")]
    counts = {s: sum(r["status"] == s for r in results) for s in ("ok", "done", "failed", "blocked")}
    print("sweep: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + " group(s)")
    for r in bad:
        print(f"  {r['status']}: {', '.join(r['runs'])}: {r['error']}", file=sys.stderr)
    if bad:
        sys.exit(1)
    return results


if __name__ == "__main__":
    main()
