"""Errors a user can fix (bad name, bad hyperparameter, missing data).

Command-line entry points catch `UserError` and print its message as one line on
stderr with a non-zero exit, instead of a traceback wall.
"""


class UserError(ValueError):
    """A mistake in the user's input; the message says what is allowed."""


class DataNotFound(UserError, FileNotFoundError):
    """A data set is missing or incomplete at the given path."""
