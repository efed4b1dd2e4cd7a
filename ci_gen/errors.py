"""One exception family: the CLI prints its message as one line and exits non-zero."""


class CiGenError(Exception):
    """A failure the user can act on. Never carries a secret in its message."""

    exit_code = 1


class UsageError(CiGenError):
    """The command line itself is wrong (unknown option value, bad KEY=VALUE)."""

    exit_code = 2


class InputError(CiGenError):
    """A component input is unknown, missing or fails its type/options/regex."""


class DriftError(CiGenError):
    """Generated files differ from what the sources render."""
