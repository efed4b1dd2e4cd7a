"""`ci-gen job edge-gate`: fail when edge-convert's parity gate failed.

The verdict is `ci_gen.edge.gate.verdict`; this module only parses and reports.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ci_gen.edge.gate import verdict


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "edge-gate", help="fail when edge-convert's parity gate failed",
        description="Read edge-convert's edge.json and exit non-zero, naming every variant "
        "and threshold, when a LiteRT model lost too much accuracy or agreement.")
    p.add_argument("--result", type=Path, default=Path("edge/edge.json"), metavar="PATH",
                   help="edge-convert's result (default: edge/edge.json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    gate = verdict(args.result)
    print(f"edge-gate: passed (accuracy drop <= {gate['max_accuracy_drop']:g}, "
          f"agreement >= {gate['min_agreement']:g} for every variant)")
    return 0
