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
