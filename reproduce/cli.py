"""Shared command-line plumbing: one-line errors, key=value options."""
import json
import os

from common import UserError
from common.cli import Parser, guard  # noqa: F401  (Parser: every CLI's parser)


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


def refuse_unused(given: dict, why: str) -> None:
    """A UserError naming the options of `given` ({flag: whether it was given}) that are set: they
    would be ignored, and an ignored option is a silent surprise."""
    flags = [flag for flag, on in given.items() if on]
    if flags:
        raise UserError(f"{', '.join(flags)} do{'es' if len(flags) == 1 else ''} not apply: {why}; leave "
                        f"{'it' if len(flags) == 1 else 'them'} out")


def command_line(module: str, argv: list[str]) -> str:
    """'python -m reproduce.<module> <argv>': the command that resumes this one (printed on failure)."""
    import shlex

    return f"python -m reproduce.{module} {shlex.join(argv)}".rstrip()


THREADS_ENV = "LOGIT_KD_THREADS"


def threads_per_process() -> int:
    """$LOGIT_KD_THREADS, default 1 (see configure_threads); anything but a whole number >= 1 is refused."""
    text = os.environ.get(THREADS_ENV) or "1"
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if threads < 1:
        raise UserError(f"{THREADS_ENV} must be a whole number >= 1 (torch threads per process), got {text!r}; "
                        f"unset it or set e.g. {THREADS_ENV}=1")
    return threads


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
    """Run `main` under common.cli.guard: a user error, a diverged run or a fixable OSError is one
    line on stderr and exit 2; Ctrl-C, SIGTERM, SIGHUP stop it cleanly with exit 128 + signal."""
    from engine.trainer import TrainingDiverged

    return guard(main, errors=(TrainingDiverged,), setup=configure_threads)
