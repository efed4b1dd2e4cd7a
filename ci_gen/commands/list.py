"""`ci-gen list`: the components, their version, stage and inputs."""

from __future__ import annotations

import argparse
import json

from ci_gen import __version__
from ci_gen import components as desc


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the components, their version and inputs",
                       description="List the components this ci-gen ships, with their inputs.")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=run)


def listing() -> list[dict]:
    out = []
    for name in desc.ORDER:
        c = desc.COMPONENTS[name]
        out.append({
            "name": c.name,
            "version": __version__,
            "stage": c.stage,
            "summary": c.summary,
            "inputs": {i.name: {"required": i.required, **i.spec()} for i in c.inputs},
        })
    return out


def run(args: argparse.Namespace) -> int:
    data = listing()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for c in data:
        print(f"{c['name']}@{c['version']}  (stage {c['stage']})")
        print(f"  {c['summary']}")
        for name, spec in c["inputs"].items():
            default = "required" if spec["required"] else f"default {json.dumps(spec.get('default'))}"
            print(f"    {name:<16} {spec.get('type', 'string'):<8} {default}")
    return 0
