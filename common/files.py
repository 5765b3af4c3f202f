"""Atomic file writes with the permissions of the user's other files.

    from common.files import atomic_write_bytes, atomic_write_text, atomic_file
    atomic_write_text(path, "table\n")
    with atomic_file(path) as f:          # any writer that takes a binary file object
        fig.savefig(f, format="png")

Each write goes to a temporary `.<name>.tmp.<random>` file in the same folder, is fsync'ed and
renamed over `path`: a kill at any point leaves the old file or the new one, never a torn or
empty one (at most the temporary file, which `RunDir.create` and the renderer ignore).

`tempfile.mkstemp` creates files mode 0600; colleagues sharing a results folder could then not
read them, so the temporary file is given 0666 & ~umask first, as `open(path, "w")` would.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

TEMP_MARK = ".tmp."   # temp files are .<name>.tmp.<random>: left behind only by a killed writer


def _read_umask() -> int:
    """The process umask without changing it (Linux reports it in /proc); else set and restore it,
    which is safe here as this runs once, at import, before any thread writes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_read_umask()


@contextmanager
def atomic_file(path, mode: str = "wb"):
    """A file object whose content replaces `path` atomically when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMP_MARK}")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            with_filename(e, path)
        raise


def with_filename(e: OSError, path) -> None:
    """Give `e` the file name `path` if it has none (a full disk fails in write(), which names no file),
    so that the one-line message says which file (common/cli.py)."""
    if e.filename is None:
        e.filename = str(path)


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_writable(folder, what: str, fix: str) -> Path:
    """Before anything is trained or written: `folder` is, or can be made, a folder this process
    can write in (a UserError naming it and `fix` if it is a file, read-only or full). Probed by
    writing a small temporary file, as permissions alone do not tell (root, read-only mounts)."""
    from common.errors import UserError

    folder = Path(folder)
    blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserError(f"{what} {folder}: {blocker} is a file, not a folder; {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=f".probe{TEMP_MARK}") as f:
            f.write(b"\0" * 65536)        # a full disk refuses data, not always an empty file
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise UserError(f"cannot write in {what} {folder}: {e.strerror}; {fix}") from None
    return folder
