"""Print how long `ci-gen --help` takes, and prove no heavy module is imported at start-up.

Targets: under 0.3 s (issue 2), and under half of `check-jsonschema --help` measured side by
side on the same machine (issue 22; a ratio holds on a loaded machine, seconds do not).
Run: `.venv/bin/python benchmarks/cli_startup.py`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("tensorflow", "gitlab", "dvc", "numpy", "requests", "jsonschema", "check_jsonschema",
         "jinja2", "yaml")
RUNS = 15


def main() -> int:
    bin_dir = Path(sys.executable).parent
    times, other = [], []
    for _ in range(RUNS):  # interleaved: the machine's load falls on both alike
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ci_gen", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([str(bin_dir / "check-jsonschema"), "--help"], check=True, capture_output=True)
        other.append(time.perf_counter() - start)
    probe = (
        "import sys; from ci_gen.cli import build_parser; build_parser(['--help']); "
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
    ratio = statistics.median(times) / statistics.median(other)
    print(f"check-jsonschema --help: median {statistics.median(other):.3f} s; "
          f"ci-gen / check-jsonschema: {ratio:.2f}x (target under 0.5x)")
    print(f"heavy modules imported by the CLI at start-up: {loaded or 'none'}")
    return 0 if statistics.median(times) < 0.3 and ratio < 0.5 and not loaded else 1


if __name__ == "__main__":
    raise SystemExit(main())
