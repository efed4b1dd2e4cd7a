"""`ci-gen job sweep-collect`: the sweep's leaderboard, best cell marked.

The work is `ci_gen.sweep.leaderboard`; this module only parses and reports.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ci_gen.jobs import whole_number
from ci_gen.jobs.sweep_cell import check_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep-collect", help="rank a sweep's cells into a leaderboard for the MR report",
        description="Read every cell's result, check the sweep is complete, rank the cells by the "
        "metric in its direction and mark the best. Writes OUT/leaderboard.json, "
        "OUT/leaderboard.md and the section eval-report appends to its MR note.")
    p.add_argument("--cells", type=Path, default=Path("sweep/cells"), metavar="DIR",
                   help="the cells' results (default: sweep/cells)")
    p.add_argument("--metric", required=True, help="metric the cells are ranked by")
    p.add_argument("--direction", required=True, choices=("higher", "lower"),
                   help="which way the metric is better")
    p.add_argument("--max-cells", type=whole_number, required=True, metavar="N",
                   help="refuse a sweep of more than N cells")
    p.add_argument("--out", type=Path, default=Path("sweep"), metavar="DIR",
                   help="where leaderboard.json and leaderboard.md go (default: sweep)")
    p.add_argument("--section", type=Path, default=Path("report.d/sweep.md"), metavar="PATH",
                   help="markdown section for the MR report (default: report.d/sweep.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ci_gen.sweep.grid import label
    from ci_gen.sweep.leaderboard import collect

    check_flags(args, ())
    board = collect(args.cells, args.out, args.section, metric=args.metric, direction=args.direction,
                    max_cells=args.max_cells)
    best = board["best"]
    print(f"ci-gen: sweep-collect: {len(board['cells'])} cells; best {label(best['params'])} with "
          f"{args.metric} {best['metrics'][args.metric]}; wrote {args.out}/leaderboard.json and {args.section}")
    return 0
