"""Errors shared by every subpackage.

`UsageError` is what a subcommand raises for a user error found before any work started (a bad flag value, a
missing file, a config that fails validation): the `augury` dispatcher prints it as one line and exits with
status 2. It lives here, below every subpackage, so that no subpackage imports the dispatcher above it.
"""

from __future__ import annotations


class UsageError(Exception):
    """A user error found before any work started: printed as one line, exit code 2.

    `prog` names the command in that line when it is more than `augury NAME` (`augury ladder plan`)."""

    def __init__(self, message: str, prog: str | None = None):
        super().__init__(message)
        self.prog = prog
