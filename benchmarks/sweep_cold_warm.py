"""Print the sweep's time, cold and warm, and their ratio (issues 15 and 22).

The example with `--sweep`, 2 epochs, its 2 x 2 grid in a merge request pipeline
(`ci-gen run --mr --job mlops-sweep-collect`, runner-like: each cell on the runtime image's
stand-in, as on GitLab): cold, every cell trains; warm, a second pipeline on the same project,
every cell is reused from DVC's run cache on the remote. Also the sum of the cells' own
durations (what the leaderboard shows) and the slowest cell's set-up (job start to its first
`ci-gen job` command). Run: `.venv/bin/python benchmarks/sweep_cold_warm.py`.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ci_gen.local.pipeline import RunOptions, run_local

COLLECT = "mlops-sweep-collect"


def git(project: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
                   cwd=project, check=True, capture_output=True)


def run_once(project: Path) -> tuple[float, float, list[str], float]:
    """(wall seconds, sum of the cells' seconds, how each cell got its model, the slowest
    cell's set-up seconds)."""
    out = io.StringIO()
    start = time.perf_counter()
    outcome = run_local(RunOptions(directory=project, mr=True, job=COLLECT, quiet=True), out)
    elapsed = time.perf_counter() - start
    if outcome.exit_code != 0:
        sys.stderr.write(out.getvalue())
        for log in (project / ".gitlab-ci-local/output").glob("*.log"):  # the cells' own logs
            text = log.read_text(errors="replace")
            if "ci-gen: sweep: cell " in text:
                sys.stderr.write("".join(text.splitlines(keepends=True)[-15:]))
        raise SystemExit("the sweep failed")
    board = json.loads((project / ".gitlab-ci-local/artifacts" / COLLECT / "sweep/leaderboard.json").read_text())
    setups = [r.setup for r in outcome.results if r.name.startswith("mlops-sweep: [") and r.setup is not None]
    if len(setups) != len(board["cells"]):
        raise SystemExit(f"set-up time missing for some cells: {len(setups)} of {len(board['cells'])}")
    return elapsed, sum(c["seconds"] for c in board["cells"]), [c["how"] for c in board["cells"]], max(setups)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ci-gen-bench-") as tmp:
        project = Path(tmp) / "demo"
        subprocess.run([sys.executable, "-m", "ci_gen", "init", str(project), "--example", "fashion-mnist",
                        "--sweep"], check=True, capture_output=True)
        params = project / "params.yaml"
        params.write_text(params.read_text().replace("  epochs: 12\n", "  epochs: 2\n"))
        git(project, "commit", "-qam", "bench: 2 epochs")
        git(project, "checkout", "-qb", "sweep")
        with params.open("a") as f:
            f.write("# a merge request that runs the sweep\n")
        git(project, "commit", "-qam", "bench: sweep")
        cold, cold_cells, cold_how, cold_setup = run_once(project)
        warm, warm_cells, warm_how, warm_setup = run_once(project)
    print(f"sweep of 4 cells, cold (cells: {', '.join(cold_how)}): {cold:6.1f} s wall, "
          f"{cold_cells:6.1f} s in the cells, set-up {cold_setup:.1f} s at most per cell")
    print(f"sweep of 4 cells, warm (cells: {', '.join(warm_how)}): {warm:6.1f} s wall, "
          f"{warm_cells:6.1f} s in the cells, set-up {warm_setup:.1f} s at most per cell")
    print(f"warm/cold ratio: {warm / cold:.2f} wall, {warm_cells / cold_cells:.2f} in the cells")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
