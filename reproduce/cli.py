"""Shared command-line plumbing: one-line errors, key=value options."""
import argparse
import json
import os
import sys

from common import UserError


class Parser(argparse.ArgumentParser):
    """argparse with a usage mistake as one line on stderr (exit 2), like every other user error."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def parse_value(text: str):
    """'4' -> 4, '0.5' -> 0.5, 'inf' -> inf, 'true' -> True, anything else stays a string."""
    if text.lower() in ("inf", "+inf", "infinity"):
        return float("inf")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(pairs: list[str] | None, flag: str) -> dict:
    options = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UserError(f"{flag} takes key=value, got '{pair}'")
        key, value = pair.split("=", 1)
        options[key] = parse_value(value)
    return options


THREADS_ENV = "LOGIT_KD_THREADS"


def threads_per_process() -> int:
    """$LOGIT_KD_THREADS, default 1 (see configure_threads)."""
    return max(1, int(os.environ.get(THREADS_ENV, "1")))


def configure_threads() -> None:
    """CPU threads per process: $LOGIT_KD_THREADS, default 1.

    Measured here (2 cores): the mini models' convolutions take 0.14 ms with one thread
    and 48 ms with two when the other core is busy (OpenMP threads wait on each other),
    so one thread per process, and parallel processes for parallel runs, is the robust
    default. A GPU run is unaffected; set LOGIT_KD_THREADS for big models on a CPU.
    """
    import torch

    torch.set_num_threads(threads_per_process())


def main_guard(main):
    """Run `main`; a user error or a diverged run becomes one line on stderr and exit 2."""
    from engine.trainer import TrainingDiverged

    def wrapped(argv=None):
        configure_threads()
        try:
            return main(argv)
        except (UserError, TrainingDiverged) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted: the last end-of-epoch checkpoint is kept; rerun the same command to resume",
                  file=sys.stderr)
            sys.exit(130)

    return wrapped
