"""The logic of the components' jobs, as `ci-gen job NAME` subcommands.

Components cannot ship files (GitLab issue 439478), so instead of long shell in YAML each
job calls one of these tested modules, installed at the component's own version.
"""

import argparse


def whole_number(text: str) -> int:
    """A flag's whole number as GitLab interpolates a number input (`200` or `200.0`)."""
    value = float(text)
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"not a whole number: {text}")
    return int(value)


def share(text: str) -> float:
    """A flag's share from 0 to 1: the decimal string input (`"0.95"`), or the number an
    older component interpolated (`0.95`, Ruby's `1.0e-05`). NaN and infinities never pass."""
    from ci_gen.errors import UsageError
    from ci_gen.inputs import parse_number

    try:
        value = float(parse_number(text, "the value"))
    except UsageError:
        raise argparse.ArgumentTypeError(f"not a number from 0 to 1: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"not a number from 0 to 1: {text!r}")
    return value
