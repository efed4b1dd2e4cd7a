"""Print the whole example pipeline's time, cold and warm, as `make demo` and a rerun see it.

Cold: a freshly scaffolded example (what `make demo` runs: every job, manual ones included).
Warm: `ci-gen run` on the same project right after, nothing changed (train restores from the
DVC run cache). The same as `make demo` followed by `ci-gen run .work/demo`, timed here in a
temporary folder. Run: `.venv/bin/python benchmarks/pipeline_cold_warm.py`.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ci_gen.local.pipeline import RunOptions, run_local


def run_once(project: Path) -> float:
    out = io.StringIO()
    start = time.perf_counter()
    outcome = run_local(RunOptions(directory=project, quiet=True, host_env=True, manual=True), out)
    elapsed = time.perf_counter() - start
    if outcome.exit_code != 0:
        sys.stderr.write(out.getvalue())
        raise SystemExit("the example pipeline failed")
    return elapsed


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ci-gen-bench-") as tmp:
        project = Path(tmp) / "demo"
        subprocess.run([sys.executable, "-m", "ci_gen", "init", str(project), "--example", "fashion-mnist"],
                       check=True, capture_output=True)
        cold = run_once(project)
        warm = run_once(project)
    print(f"example pipeline, cold (make demo):              {cold:6.1f} s")
    print(f"example pipeline, warm (ci-gen run on it again): {warm:6.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
