"""The runtime environment of `ci-gen run` is pinned by ci-gen's own tested constraints, shipped
with it, never by the caller's venv; a pip conflict is one line naming the packages (issue 22)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from ci_gen.local import runtime

REPO = Path(__file__).resolve().parents[1]


def test_runtime_pins_are_ci_gens_tested_constraints():
    assert runtime.tested_pins() == (REPO / "constraints.txt").read_text()
    # The wheel carries them beside the module that reads them.
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"constraints.txt" = "ci_gen/local/constraints.txt"' in pyproject


def _wheel(where: Path, name: str, version: str, requires: list[str]) -> None:
    """A minimal pure-Python wheel: what pip needs to resolve it."""
    info = f"{name}-{version}.dist-info"
    meta = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                    *(f"Requires-Dist: {r}\n" for r in requires)])
    files = {f"{name}/__init__.py": "", f"{info}/METADATA": meta,
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    with zipfile.ZipFile(where / f"{name}-{version}-py3-none-any.whl", "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
        zf.writestr(f"{info}/RECORD", "".join(f"{p},,\n" for p in files) + f"{info}/RECORD,,\n")


def test_a_pip_conflict_is_one_line_naming_the_packages(tmp_path):
    """Real pip on two local wheels: `app` needs lib<2, the constraints pin lib==2.0 (the
    caller's boto3 moving botocore past what aiobotocore allows, in small)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "app", "1.0", ["lib<2"])
    _wheel(wheels, "lib", "2.0", [])
    (tmp_path / "pins.txt").write_text("lib==2.0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                           "--no-index", "--find-links", str(wheels), "-c", str(tmp_path / "pins.txt"), "app"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0 and "ResolutionImpossible" in proc.stdout + proc.stderr
    line = runtime.pip_failure(proc.stdout, proc.stderr)
    assert "\n" not in line and "ResolutionImpossible" not in line, line
    assert line.startswith("Cannot install app") and "app 1.0 depends on lib<2" in line
    assert "lib==2.0" in line, line
