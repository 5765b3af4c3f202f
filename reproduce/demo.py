"""`make demo`: the headline mini table and figure of each paper, on 2 CPU cores.

For every paper of reproduce/papers.py that declares a demo section: its runs at one seed (0) on
the paper's default profile, trained into the one run store (so runs that `make mini` or
another paper already trained are reused, and the demo resumes where it stopped), then its
headline table (printed) and figure, under results/demo/<paper>/. One seed, so differences
of a few tenths are noise here; the committed 3-seed results are under results/<paper>/<profile>/.
"""
import time
from pathlib import Path

from engine.rundir import results_root
from reproduce.cli import Parser, main_guard
from reproduce.papers import experiments
from reproduce.runner import run


@main_guard
def main(argv=None):
    ap = Parser(prog="python -m reproduce.demo", description=__doc__)
    ap.add_argument("--profile", help="override every paper's default profile (smoke: the tests)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, help="training processes (default: one per core)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    start = time.time()
    written = []
    for e in experiments():
        if e.demo_section is None:
            continue
        t0 = time.time()
        out = results_root() / "demo" / e.name
        paths = run(e, e.demo_section, profile=args.profile, seeds=(args.seed,), out=out, quiet=args.quiet,
                    jobs=args.jobs, log=(lambda *a, **k: None) if args.quiet else print)
        for path in paths:
            if path.suffix == ".md":
                print("\n" + path.read_text())
        print(f"{e.name}: demo in {time.time() - t0:.0f} s; wrote " + ", ".join(str(p) for p in paths), flush=True)
        written += paths
    print(f"demo finished in {time.time() - start:.0f} s; outputs in {Path(results_root() / 'demo')}")
    return written


if __name__ == "__main__":
    main()
