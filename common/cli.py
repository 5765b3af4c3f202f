"""What every command line of the project shares: a user's mistake is one line, a signal stops
it cleanly. `reproduce.cli.main_guard` and `python -m analysis` wrap their `main` with `guard`.

- `UserError` (and the `errors` given): `error: <message>` on stderr, exit status 2.
- An OSError the user can fix (disk full, read-only or unwritable folder, a file where a folder
  belongs): one line naming the file and what to do, exit status 2.
- Ctrl-C, SIGTERM and SIGHUP: one line, exit status 128 + the signal's number (130, 143, 129).
  SIGTERM and SIGHUP raise `Interrupted`, a KeyboardInterrupt, so every `except
  KeyboardInterrupt` / `finally` on the way out runs as for Ctrl-C: sweep workers are stopped
  (engine/workers.py), locks released, run directories left resumable.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading

from common.errors import UserError

class Parser(argparse.ArgumentParser):
    """argparse with a usage mistake as one line on stderr (exit 2), like every other user error."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C's KeyboardInterrupt."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
ACCESS = (errno.EROFS, errno.EACCES, errno.EPERM)
SHAPE = (errno.ENOTDIR, errno.EISDIR, errno.EEXIST)


def os_error_line(e: OSError) -> str | None:
    """One line for an OSError the user can fix, else None (a bug: keep its traceback)."""
    where = e.filename or "a file"
    if e.errno in SPACE:
        return (f"cannot write {where}: {e.strerror}; free space there (or set LOGIT_KD_RESULTS to a folder on "
                "another disk), then rerun the same command: it resumes from the last checkpoints")
    if e.errno in ACCESS:
        return (f"cannot access {where}: {e.strerror}; make it readable and writable for you, or set "
                "LOGIT_KD_RESULTS (or --root) to a folder you can write")
    if e.errno in SHAPE:
        return (f"{where}: {e.strerror}; a file stands where a folder belongs, or the reverse: move it away, "
                "or choose another folder")
    return None


def interrupted_line(signum: int) -> str:
    return (f"interrupted by {signal.Signals(signum).name}: workers stopped, the last end-of-epoch checkpoints "
            "are kept; rerun the same command to resume")


def guard(main, errors: tuple = (UserError,), setup=None):
    """`main(argv)` with one-line errors and clean signal handling (see the module docstring);
    `setup()` runs first, inside the guard."""
    def wrapped(argv=None):
        in_main = threading.current_thread() is threading.main_thread()
        saved = {s: signal.signal(s, _raise_interrupted) for s in STOP_SIGNALS} if in_main else {}
        try:
            if setup is not None:
                setup()
            return main(argv)
        except (UserError, *errors) as e:
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            sys.exit(2)
        except BrokenPipeError:            # `... | head`: the reader left; no traceback, and none at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(128 + signal.SIGPIPE)
        except OSError as e:
            line = os_error_line(e)
            if line is None:
                raise
            print(f"error: {line}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", signal.SIGINT)
            print(interrupted_line(signum), file=sys.stderr)
            sys.exit(128 + signum)
        finally:
            for s, handler in saved.items():
                signal.signal(s, handler)

    wrapped.__wrapped__ = main
    wrapped.__doc__ = main.__doc__
    return wrapped
