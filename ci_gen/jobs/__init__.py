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



def finite_number(text: str) -> float:
    """A flag's decimal: the string input as written (`"0.95"`), or the number an older
    component interpolated (`0.95`, Ruby's `1.0e-05`). NaN and infinities never pass; the
    range is the domain's to check (it names the flag)."""
    from ci_gen.errors import UsageError
    from ci_gen.inputs import parse_number

    try:
        return float(parse_number(text, "the value"))
    except UsageError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
