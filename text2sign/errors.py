"""Exceptions and process exit codes shared by every entry point.

Exit codes (documented in the README and docs/training.md, relied on by the job layer):

* ``EXIT_OK`` (0): success.
* ``EXIT_FAILURE`` (1): any other failure (a bug, a NaN loss, a crashed rank).
* ``EXIT_USAGE`` (2): bad usage, config or input; one line on stderr.
* ``EXIT_REQUEUE`` (75): the trainer caught SIGUSR2/SIGTERM, saved a complete checkpoint and
  wants to be requeued. 75 is ``EX_TEMPFAIL`` from BSD ``sysexits.h``: "temporary failure,
  try again later".
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_REQUEUE = 75


class UsageError(Exception):
    """A user-facing error: bad usage, config or input. The CLI prints it as one line, exit 2."""


class ConfigError(UsageError):
    """An invalid config file, key or value."""


class DataError(UsageError):
    """A missing, empty or (with ``--strict``) bad dataset."""


class RunDirError(UsageError):
    """A run dir that cannot be used, e.g. one that holds a run with a different config."""
