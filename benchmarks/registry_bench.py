"""Print how long registering and downloading the example model take against a local MLflow
server (the one `ci-gen run` starts), and how long that server takes to start.

The model: `--model DIR`, else the one `make demo` trained (.work/demo/.gitlab-ci-local/
artifacts/mlops-train/model/fashion-mnist), else random files of its layout and size (said so).
Run: `.venv/bin/python benchmarks/registry_bench.py [--model DIR] [--rounds N]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from ci_gen.local import registry as local
from ci_gen.registry import bundle, catalog, lineage
from ci_gen.registry.client import Registry
from ci_gen.registry.register import register

DEMO = Path(".work/demo/.gitlab-ci-local/artifacts/mlops-train/model/fashion-mnist")


def stand_in(root: Path) -> Path:
    """Random files shaped like the example's SavedModel (121k float32 weights)."""
    model = root / "fashion-mnist" / "1"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(os.urandom(180_000))
    (model / "fingerprint.pb").write_bytes(os.urandom(60))
    (model / "variables" / "variables.index").write_bytes(os.urandom(1_500))
    (model / "variables" / "variables.data-00000-of-00001").write_bytes(os.urandom(1_460_000))
    return root / "fashion-mnist"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = args.model or (DEMO if DEMO.is_dir() else stand_in(tmp_path / "stand-in"))
        what = "a random stand-in of its size" if model.is_relative_to(tmp_path) else str(model)
        files = [p for p in model.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        t0 = time.perf_counter()
        server = local.start(tmp_path / "registry")
        started = time.perf_counter() - t0
        try:
            reg = Registry(server.url)
            regs, downs = [], []
            for i in range(args.rounds):
                env = {"CI_COMMIT_SHA": f"{i:040x}", "CI_JOB_ID": str(i)}
                t0 = time.perf_counter()
                done = register(reg, "fashion-mnist", bundle.pack(model), tags=lineage.tags(env),
                                params={}, metrics={"accuracy": 0.9}, env=env, log=lambda _: None)
                regs.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                catalog.download(reg, done.version, tmp_path / f"down-{i}")
                downs.append(time.perf_counter() - t0)
        finally:
            server.stop()
    print(f"model: {what}, {size / 1e6:.2f} MB in {len(files)} files")
    print(f"local MLflow server start: {started:.1f} s")
    print(f"register (pack, create version, log, upload): median {statistics.median(regs):.2f} s, "
          f"max {max(regs):.2f} s over {args.rounds} versions")
    print(f"download (manifest, archive, sha256 checks, unpack): median {statistics.median(downs):.2f} s, "
          f"max {max(downs):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
