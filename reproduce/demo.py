"""`make demo`: the headline mini table and figure of each paper and the comparison, on 2 CPU cores.

Every experiment of reproduce/papers.py that declares a demo section contributes its runs at one
seed (0) on its default profile; all of them are scheduled together (teachers first, groups
spread over one worker per core) and trained into the one run store, so runs that `make mini`
or another paper already trained are reused and an interrupted demo resumes where it stopped.
The seed-0 teachers are not trained but copied from models/shipped/ (engine/shipped.py: trained
by this code on a 2-core CPU, checksums checked), as mdistiller ships its CIFAR teachers; they
were the demo's critical path. `--train-teachers` trains them here.
Then each headline table is printed and its figure written under results/demo/<paper>/. One
seed, so differences of a few tenths are noise here; the committed multi-seed results are under
results/<paper>/<profile>/.
"""
import sys
import time
from pathlib import Path

from engine.rundir import results_root
from engine.sweep import check_jobs
from reproduce.cli import Parser, command_line, main_guard
from reproduce.papers import experiments
from engine.sweep import schedule
from reproduce.runner import DEMO, dry_run, prepare, render_command, train


@main_guard
def main(argv=None):
    ap = Parser(prog="python -m reproduce.demo", description=__doc__)
    ap.add_argument("--profile", help="override every paper's default profile (smoke: the tests)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, help="training processes (default: one per core)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--train-teachers", action="store_true",
                    help="train the seed-0 teachers here instead of copying the shipped ones (models/shipped/)")
    ap.add_argument("--dry-run", action="store_true", help="list the demo's runs and their estimated cost; train nothing")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    check_jobs(args.jobs)
    log = (lambda *a, **k: None) if args.quiet else print
    start = time.time()
    plans = [prepare(e, DEMO, args.profile, (args.seed,)) for e in experiments() if e.demo_section is not None]
    configs = list({c.run_id: c for _, cs in plans for c in cs}.values())
    if args.dry_run:
        for plan, cs in plans:
            dry_run(plan, schedule(cs), jobs=args.jobs)
        from engine.shipped import shipped_ids

        ship = {c.run_id for c in configs} & set(shipped_ids()) if not args.train_teachers else set()
        print(f"# the demo trains {len({c.run_id for c in configs}) - len(ship)} distinct runs (shared ones once); "
              f"{len(ship)} shipped teacher(s) copied from models/shipped/, not trained")
        return []
    train(configs, profile=plans[0][0].profile, jobs=args.jobs, quiet=args.quiet, log=log,
          rerun=command_line("demo", argv), shipped=not args.train_teachers)
    trained = time.time() - start
    written = []
    for plan, _ in plans:
        paths = render_command(plan, DEMO, results_root() / "demo" / plan.paper)
        for path in paths:
            if path.suffix == ".md":
                print("\n" + path.read_text())
        print(f"{plan.paper}: wrote " + ", ".join(str(p) for p in paths), flush=True)
        written += paths
    print(f"demo finished in {time.time() - start:.0f} s ({trained:.0f} s to train); outputs in "
          f"{Path(results_root() / 'demo')}")
    return written


if __name__ == "__main__":
    main()
