"""Print how long `ci-gen --help` takes, and prove no heavy module is imported at start-up.

Target (issue 2): under 0.3 s. Run: `.venv/bin/python benchmarks/cli_startup.py`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

HEAVY = ("tensorflow", "gitlab", "dvc", "numpy", "requests", "jsonschema", "check_jsonschema")
RUNS = 15


def main() -> int:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ci_gen", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    probe = (
        "import sys; from ci_gen.cli import build_parser; build_parser(); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.strip()
    bare = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - start)
    print(f"ci-gen --help: median {statistics.median(times):.3f} s, max {max(times):.3f} s over {RUNS} runs")
    print(f"python -c pass: median {statistics.median(bare):.3f} s (interpreter start-up alone)")
    print(f"heavy modules imported by the CLI at start-up: {loaded or 'none'}")
    return 0 if statistics.median(times) < 0.3 and not loaded else 1


if __name__ == "__main__":
    raise SystemExit(main())
