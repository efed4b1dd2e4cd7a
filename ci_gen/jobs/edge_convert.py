"""`ci-gen job edge-convert`: the SavedModel as LiteRT models, measured against it.

The work is `ci_gen.edge.convert`; this module only parses and reports.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ci_gen.components import NONE, given
from ci_gen.jobs import finite_number, whole_number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "edge-convert", help="convert the SavedModel to .tflite (float32, dynamic-range, int8) "
        "and measure each against it",
        description="Convert the SavedModel to LiteRT: float32, dynamic-range and full-integer "
        "int8 (calibrated on a representative set drawn from the training split). Run each "
        "with the LiteRT interpreter on the held-out split next to the SavedModel: accuracy, "
        "agreement with its predictions, file size, latency p50. Writes OUT/*.tflite, "
        "OUT/edge.json and the report section; records the gate's verdict (edge-gate enforces it).")
    p.add_argument("--model", required=True, type=Path, metavar="DIR",
                   help="SavedModel directory, or a base holding numeric version directories")
    p.add_argument("--loader", required=True, metavar="MODULE:FUNCTION",
                   help="project function returning (inputs, labels) for 'train' and 'test'")
    p.add_argument("--representative-samples", type=whole_number, default=200, metavar="N",
                   help="training samples the int8 model is calibrated on (default: 200)")
    p.add_argument("--test-samples", type=whole_number, default=2000, metavar="N",
                   help="held-out samples every model is measured on (default: 2000)")
    p.add_argument("--max-accuracy-drop", type=finite_number, default=0.02, metavar="X",
                   help="largest accuracy loss of a variant against the SavedModel (default: 0.02)")
    p.add_argument("--min-agreement", type=finite_number, default=0.95, metavar="X",
                   help="smallest share of predictions equal to the SavedModel's (default: 0.95)")
    p.add_argument("--out", type=Path, default=Path("edge"), metavar="DIR",
                   help="where the .tflite files and edge.json go (default: edge)")
    p.add_argument("--section", type=Path, default=Path("report.d/edge.md"), metavar="PATH",
                   help="markdown table for the MR report (default: report.d/edge.md)")
    p.add_argument("--data", default="", metavar="PATH",
                   help="DVC pointer of the data the loader reads, part of the cache key (none: no data)")
    p.add_argument("--requirements", default="", metavar="FILE",
                   help="pip requirements installed only when a model must really be converted")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help="reuse measurements of an unchanged model from DIR, and keep new ones there")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ci_gen.edge.convert import Options, run as convert

    opts = Options(model=args.model, loader=args.loader, out=args.out, section=args.section,
                   data=given(args.data, NONE), requirements=args.requirements, cache=args.cache,
                   representative_samples=args.representative_samples,
                   test_samples=args.test_samples, max_accuracy_drop=args.max_accuracy_drop,
                   min_agreement=args.min_agreement)
    result = convert(opts, say=lambda line: print(line, flush=True))
    verdict = "passed" if result["gate"]["passed"] else "failed (edge-gate will fail the pipeline)"
    print(f"edge-convert: wrote {args.out}/edge.json and {args.section}; gate {verdict}")
    return 0
