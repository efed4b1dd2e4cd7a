"""Print the cold and warm `train` job times of the example pipeline and their ratio.

Cold: a freshly scaffolded example, nothing in the DVC run cache. Warm: the same job again
with nothing changed, which must restore from the run cache instead of retraining (target
ratio <= 0.25 with the example's default params). Run: `.venv/bin/python benchmarks/train_warm_cold.py`.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ci_gen.local.pipeline import RunOptions, run_local

TARGET = 0.25


def train_once(project: Path) -> float:
    out = io.StringIO()
    start = time.perf_counter()
    outcome = run_local(RunOptions(directory=project, job="mlops-train", quiet=True, host_env=True), out)
    elapsed = time.perf_counter() - start
    if outcome.exit_code != 0:
        sys.stderr.write(out.getvalue())
        raise SystemExit("train job failed")
    job = {r.name: r for r in outcome.results}["mlops-train"]
    return job.seconds if job.seconds is not None else elapsed


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ci-gen-bench-") as tmp:
        project = Path(tmp) / "fmnist"
        subprocess.run([sys.executable, "-m", "ci_gen", "init", str(project), "--example", "fashion-mnist"],
                       check=True, capture_output=True)
        cold = train_once(project)
        warm = train_once(project)
    ratio = warm / cold
    print(f"train job, cold (trains):            {cold:6.1f} s")
    print(f"train job, warm (run-cache restore): {warm:6.1f} s")
    print(f"warm/cold ratio: {ratio:.2f} (target <= {TARGET})")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
