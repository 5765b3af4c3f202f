"""Train a list of run configs over all devices: one worker per GPU, or N one-thread CPU workers.

    python -m reproduce.sweep configs.json                 # every GPU, or one worker per CPU core
    python -m reproduce.sweep configs.json --jobs 2 --dry-run

configs.json: a JSON list of run configs (`RunConfig.to_dict()`), e.g. written by a paper script
with `engine.sweep.save_configs(configs, path)`. Teachers train before their students, finished
runs are skipped, a failing group is reported and the others go on (engine/sweep.py). Exit
status 1 when any group failed or was blocked by a failed teacher.
"""
import argparse
import sys

from engine.sweep import load_configs, run_parallel, schedule
from reproduce.cli import main_guard


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reproduce.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", help="JSON list of run configs")
    p.add_argument("--jobs", type=int, help="worker processes (default: one per GPU, else one per CPU core)")
    p.add_argument("--device", default="auto", help="auto (GPUs when present), cpu, cuda")
    p.add_argument("--threads", type=int, default=1, help="torch threads per CPU worker (default 1)")
    p.add_argument("--data-root", help="data folder (default $LOGIT_KD_DATA or ./data_cache)")
    p.add_argument("--dry-run", action="store_true", help="list the groups and their status, train nothing")
    return p


@main_guard
def main(argv=None):
    args = build_parser().parse_args(argv)
    configs = load_configs(args.configs)
    if args.dry_run:
        from engine.rundir import RunDir

        for si, stage in enumerate(schedule(configs)):
            for g in stage:
                status = ",".join("done" if RunDir(c).finished else "todo" for c in g)
                print(f"stage {si}: {len(g)} run(s) [{status}]: {', '.join(c.run_id for c in g)}")
        return []
    results = run_parallel(configs, args.jobs, device=args.device, threads=args.threads, data_root=args.data_root)
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
