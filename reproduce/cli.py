"""Shared command-line plumbing: one-line errors, key=value options."""
import json
import sys

from common import UserError


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


def main_guard(main):
    """Run `main`; a user error or a diverged run becomes one line on stderr and exit 2."""
    from engine.trainer import TrainingDiverged

    def wrapped(argv=None):
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
