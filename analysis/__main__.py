"""Re-render every manifest of an output folder from the run store, training nothing.

    python -m analysis results/kl_vs_mse/mini

Every folder is checked before anything is written; a bad folder, manifest or run file is one
line naming it and the fix (exit status 2), like every command of the project (common/cli.py).
"""
import argparse
import json
from pathlib import Path

from analysis.render import render
from common import UserError
from common.cli import Parser, guard
from common.files import check_writable


def check_folder(folder: Path) -> None:
    """`folder` holds manifests that read back, before anything is rendered."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give an output folder such as results/kl_vs_mse/mini")
    manifests = sorted((folder / "manifest").glob("*.json")) if (folder / "manifest").is_dir() else []
    if not manifests:
        raise UserError(f"{folder} has no manifest/*.json (run the paper script's command first, e.g. "
                        f"python -m reproduce.<paper> analyze --profile <profile>)")
    for path in manifests:
        check_manifest(path)
    check_writable(folder, "output folder", "make it writable, or copy the folder (manifest/ included) elsewhere")


def check_manifest(path: Path) -> None:
    """A manifest that reads back (a torn copy or a hand edit would break the renderer midway)."""
    try:
        m = json.loads(path.read_text())
        why = None if isinstance(m, dict) and {"type", "name", "paper", "runs"} <= set(m) else "not a manifest"
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        why = f"{type(e).__name__}: {e}"
    if why:
        raise UserError(f"corrupt manifest {path} ({why}); rewrite it by rerunning the command that wrote it "
                        "(python -m reproduce.<paper> analyze --profile <profile>), or delete it")


def main(argv=None) -> list[Path]:
    p = Parser(prog="python -m analysis", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="output folders holding a manifest/ subfolder")
    args = p.parse_args(argv)
    folders = list(map(Path, args.folders))
    for folder in folders:
        check_folder(folder)
    written = []
    for folder in folders:
        written += render(folder)
    for path in written:
        print(f"wrote {path}")
    return written


main = guard(main)

if __name__ == "__main__":
    main()
