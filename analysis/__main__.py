"""Re-render every manifest of an output folder from the run store, training nothing.

    python -m analysis results/kl_vs_mse/mini
"""
import argparse
import sys
from pathlib import Path

from analysis.render import render


def main(argv=None) -> list[Path]:
    p = argparse.ArgumentParser(prog="python -m analysis", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="output folders holding a manifest/ subfolder")
    args = p.parse_args(argv)
    written = []
    for folder in map(Path, args.folders):
        if not (folder / "manifest").is_dir():
            print(f"error: {folder} has no manifest/ folder (run the paper script's command first)", file=sys.stderr)
            sys.exit(2)
        written += render(folder)
    for path in written:
        print(f"wrote {path}")
    return written


if __name__ == "__main__":
    main()
