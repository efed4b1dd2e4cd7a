"""Print the hardening figures of issue 6 (the README's "Reliability" numbers).

- injection: a fixed payload corpus (every component input x every payload piece, long and
  unicode strings, the nastiest accepted values; plus the `init`, `render --input` and
  `job deploy` options) through the same checks as tests/test_injection.py: each payload is
  refused with one line, or rendered safely (YAML round trip exact, real script lines run
  by bash pass it on as literal text, no marker file). "unsafe" must be 0.
- bad inputs: every case of tests/data/bad_inputs.yaml run as a user would; "clean" means
  the documented message, one stderr line, no traceback, the exit code, no secret echoed,
  no file changed. Cases marked `bug:` are counted apart.
- secrets and faults: hooks for the other parts of issue 6 (`secrets_counts`,
  `fault_counts`), printed as "not measured yet" until they return numbers.

Run: `.venv/bin/python benchmarks/hardening_counts.py [--skip-table]`. Exit 1 when a payload
is unsafe or a table case without `bug:` is not clean.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import test_bad_inputs as table  # noqa: E402
import test_injection as inj  # noqa: E402
from helpers import tree_hash  # noqa: E402

from ci_gen import components as desc  # noqa: E402
from ci_gen.deploy.spec import ENGINES  # noqa: E402


@dataclass
class Tally:
    tried: int = 0
    refused: int = 0
    safe: int = 0
    script_lines_run: int = 0
    unsafe: list[str] = field(default_factory=list)

    def add(self, what: str, check) -> None:
        self.tried += 1
        try:
            refused = check()
        except AssertionError as exc:  # the property broke: count it, keep going
            self.unsafe.append(f"{what}: {str(exc)[:200]}")
            return
        if isinstance(refused, inj.Outcome):
            self.script_lines_run += refused.items_run
            refused = refused.refused
        if refused:
            self.refused += 1
        else:
            self.safe += 1


def option_corpus() -> list[tuple[str, object]]:
    """(label, zero-argument check) for ci-gen's own options that reach files and shells."""
    out: list[tuple[str, object]] = []
    for bit in inj.ALL_BITS + ["a" * 300]:
        out.append((f"init --templates-project {bit!r}",
                    lambda b=bit: inj.check_init_options("mlops/ci-gen" + b, "1.2.3", "component")))
        out.append((f"init --version {bit!r}",
                    lambda b=bit: inj.check_init_options("mlops/ci-gen", "1.2.3" + b, "project")))
        out.append((f"init --remote {bit!r}",
                    lambda b=bit: inj.check_remote_options("s3://bucket/p" + b, None)))
        out.append((f"init --remote (local) {bit!r}",
                    lambda b=bit: inj.check_remote_options("storage" + b, None)))
        out.append((f"init --endpoint-url {bit!r}",
                    lambda b=bit: inj.check_remote_options("s3://bucket/p", "http://127.0.0.1:9000" + b)))
        for flag, default in (("environment", "production"), ("host", "127.0.0.1"), ("port", "8501"),
                              ("model_name", "m"), ("model_path", "model"), ("serve_script", "serve.py"),
                              ("health_path", "/v1/models/m"), ("health_timeout", "120"),
                              ("env", "A=b"), ("dotenv", "deploy.env"), ("image", "app:1.0")):
            out.append((f"job deploy --{flag} {bit!r}",
                        lambda f=flag, d=default, b=bit: inj.check_deploy_flags("process", {f: d + b})))
        out.append((f"job deploy --engine {bit!r}",
                    lambda b=bit: inj.check_deploy_flags("process" + b, {})))
        for name in desc.ORDER:
            out.append((f"render {name} --input {bit!r}",
                        lambda n=name, b=bit: inj.check_render_pairs(n, [f"job-prefix{b}=x", f"stage=a{b}"])))
    assert ENGINES  # the deploy checks above use the real engine list
    return out


def injection() -> Tally:
    tally = Tally()
    for name, given in inj.iter_corpus():
        tally.add(f"{name} {given!r}"[:120], lambda n=name, g=given: inj.check_component(n, g))
    for label, check in option_corpus():
        tally.add(label, check)
    hits = list(inj.MARKER_DIR.iterdir())  # a payload that ran would have left its marker
    tally.unsafe += [f"marker file created: {p}" for p in hits]
    shutil.rmtree(inj.MARKER_DIR, ignore_errors=True)
    return tally


def bad_inputs() -> dict[str, object]:
    """Run every table case; count the clean ones (known bugs apart)."""
    clean, known, dirty = 0, 0, []
    for case in table.CASES:
        with tempfile.TemporaryDirectory(prefix="ci-gen-bad-input-") as tmp:
            root = Path(tmp)
            work, env, argv = table.prepare(case, root)
            before = tree_hash(root)
            proc = subprocess.run([sys.executable, "-m", "ci_gen", *argv], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=120)
            lines = proc.stderr.splitlines()
            stream = case.get("stream", "stderr")
            ok = ("Traceback" not in proc.stderr and proc.returncode == case["exit"]
                  and tree_hash(root) == before
                  and not (case.get("secret") and case["secret"] in proc.stdout + proc.stderr)
                  and (len(lines) == 1 and case["message"] in lines[0] if stream == "stderr"
                       else not lines and case["message"] in proc.stdout))
        if case.get("bug"):
            known += 1
            if ok:
                dirty.append(f"{case['name']}: marked bug but now clean (drop its `bug:`)")
        elif ok:
            clean += 1
        else:
            dirty.append(case["name"])
    return {"tried": len(table.CASES), "clean": clean, "known_bugs": known, "dirty": dirty}


def _pytest_counts(args: list[str]) -> dict | None:
    """Run pytest on ARGS with CI_GEN_COUNTS_FILE set; the test writes its counts there."""
    import json
    import os
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        counts = Path(fh.name)
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                              cwd=ROOT, env={**os.environ, "CI_GEN_COUNTS_FILE": str(counts)},
                              capture_output=True, text=True)
        text = counts.read_text()
        data = json.loads(text) if text else None
        if data is not None:
            data["tests_passed"] = proc.returncode == 0
        return data
    finally:
        counts.unlink(missing_ok=True)


def secrets_counts() -> dict[str, int] | None:
    """Issue 6, Secrets: the whole local pipeline (tests/test_example_pipeline.py) runs with
    sentinel S3 keys and a sentinel GitLab token, then job logs, artifacts, builds, the work
    trees, every commit, the run's output and the rendered templates are scanned."""
    return _pytest_counts(["tests/test_example_pipeline.py"])


# Each fault injected by the test suite -> the test that injects it and checks the outcome
# (a clear failure, nothing half-done, recovery). Survived = that test passes.
FAULT_TESTS: dict[str, str] = {
    **{name: f"tests/test_faults.py::{test}" for name, test in __import__("test_faults").FAULTS.items()},
    "deploy-never-healthy": "tests/test_job_deploy.py::test_unhealthy_release_restores_the_previous_one",
    "deploy-crashes": "tests/test_job_deploy.py::test_crashing_release_shows_its_log_and_restores_the_previous_one",
    "deploy-fails-no-previous": "tests/test_job_deploy.py::test_failure_without_previous_release_is_clean",
    "gitlab-500-429-transient": "tests/test_report.py::test_transient_errors_are_retried",
    "gitlab-5xx-persistent": "tests/test_report.py::test_persistent_errors_fail_after_bounded_retries",
    "corrupt-idx-files": "examples/fashion-mnist/tests/test_fmnist_loader.py::test_loader_rejects_bad_files_with_a_one_line_error_naming_the_file",
    "corrupt-data-at-init": "tests/test_init.py::test_example_with_corrupt_data_is_rolled_back",
}


def fault_counts() -> dict[str, int] | None:
    """Issue 6, Faults: run the tests that inject them; a fault survived when its test passes."""
    import xml.etree.ElementTree as ET

    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "faults.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                        *sorted(set(FAULT_TESTS.values()))], cwd=ROOT, capture_output=True, text=True)
        if not junit.is_file():
            return None
        passed: dict[str, bool] = {}
        for case in ET.parse(junit).iter("testcase"):
            name = case.get("name", "").split("[")[0]
            ok = not any(child.tag in ("failure", "error", "skipped") for child in case)
            passed[name] = passed.get(name, True) and ok
    survived = sum(passed.get(test.split("::")[1], False) for test in FAULT_TESTS.values())
    return {"injected": len(FAULT_TESTS), "survived": survived}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-table", action="store_true", help="skip the bad-input table")
    args = parser.parse_args()
    failed = False

    start = time.perf_counter()
    t = injection()
    secs = time.perf_counter() - start
    print(f"injection payloads tried: {t.tried} (refused with one line: {t.refused}, "
          f"rendered safely: {t.safe}, unsafe: {len(t.unsafe)}) in {secs:.1f} s; "
          f"script lines run under bash: {t.script_lines_run}")
    for line in t.unsafe[:20]:
        print(f"  UNSAFE {line}")
    failed |= bool(t.unsafe)

    if not args.skip_table:
        start = time.perf_counter()
        b = bad_inputs()
        secs = time.perf_counter() - start
        print(f"bad inputs tried: {b['tried']}, clean: {b['clean']}, known bugs (marked in the "
              f"table): {b['known_bugs']}, other failures: {len(b['dirty'])} in {secs:.1f} s")
        for name in b["dirty"]:
            print(f"  NOT CLEAN {name}")
        failed |= bool(b["dirty"])

    s = secrets_counts()
    print("secrets: not measured yet" if s is None
          else f"secrets: {s['secrets']} sentinel credentials, {s['scanned']} files and logs scanned, "
               f"found: {s['found']}")
    failed |= bool(s and s["found"])
    f = fault_counts()
    print("faults: not measured yet" if f is None
          else f"faults injected: {f['injected']}, survived: {f['survived']}")
    failed |= bool(f and f["survived"] != f["injected"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
