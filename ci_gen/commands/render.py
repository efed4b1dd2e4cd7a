"""`ci-gen render NAME`: print one component, as published or inlined with concrete values."""

from __future__ import annotations

import argparse
import sys

from ci_gen import components as desc
from ci_gen.dotenv import parse_assignments
from ci_gen.render import MODES, render


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="print a component's YAML",
                       description="Print a component as published (component mode, "
                       "$[[ inputs.x ]] kept) or with concrete values (inline mode).")
    p.add_argument("name", metavar="NAME", help=f"component: {', '.join(desc.ORDER)}")
    p.add_argument("--input", "-i", action="append", default=[], metavar="KEY=VALUE",
                   help="set an input (repeatable); arrays as JSON, e.g. tags='[\"gpu\"]'")
    p.add_argument("--mode", choices=MODES, default="component",
                   help="component (default) or inline")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = render(args.name, parse_assignments(args.input, "--input"), args.mode)
    sys.stdout.write(text)
    return 0
