"""Print the hardening figures of issue 6 (the README's "Reliability" numbers).

Every figure comes from the tests that check it, run here by pytest in a subprocess (this
script imports no test module):
- injection: tests/test_injection_corpus.py runs a fixed payload corpus (every component
  input x every payload piece, long and unicode strings, the nastiest accepted values; plus
  the `init`, `render --input` and `job deploy` options) through the same checks as the
  injection property tests: each payload is refused with one line, or rendered safely (YAML
  round trip exact, real script lines run by bash pass it on as literal text, no marker
  file). It writes its tally to $CI_GEN_COUNTS_FILE. "unsafe" must be 0.
- bad inputs: every section of tests/test_bad_inputs.py, found by the convention its
  docstring states (a section is one parametrised test function named `test_bad_<surface>`,
  each parameter one case; the table tests/data/bad_inputs.yaml is the section `table`), so
  a section added there is counted here without a change. "clean" means the case's test
  passes (the documented message, one stderr line, no traceback, the exit code, no secret
  echoed, no file changed). Cases marked `bug:` are strict xfails, counted apart.
- secrets: tests/test_example_pipeline.py scans everything the whole pipeline wrote for its
  sentinel credentials and writes the figures to $CI_GEN_COUNTS_FILE; so does
  tests/test_dvc_auth_oidc_pipeline.py for the `remote-auth: oidc` path (the credentials STS
  issued and the ID tokens, in every file under the project and in the run's output).
- faults: FAULT_TESTS below; a fault survived when the test that injects it passes.

Run: `.venv/bin/python benchmarks/hardening_counts.py [--skip-table] [--only PART ...]`.
Exit 1 when a payload is unsafe or a bad-input case without `bug:` is not clean.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each fault injected by the test suite -> the test that injects it and checks the outcome
# (a clear failure, nothing half-done, recovery). Survived = that test passes.
FAULT_TESTS: dict[str, str] = {
    "s3-down-before-train": "tests/test_faults.py::test_s3_outage_before_and_during_the_pipeline",
    "s3-down-between-train-and-dvc-upload": "tests/test_faults.py::test_s3_outage_before_and_during_the_pipeline",
    "s3-down-inside-dvc-upload-before-push": "tests/test_faults.py::test_s3_outage_before_and_during_the_pipeline",
    "s3-down-dvc-push-job": "tests/test_faults.py::test_dvc_push_against_a_dead_remote_fails_cleanly",
    "deploy-never-healthy": "tests/test_job_deploy.py::test_unhealthy_release_restores_the_previous_one",
    "deploy-crashes": "tests/test_job_deploy.py::test_crashing_release_shows_its_log_and_restores_the_previous_one",
    "deploy-fails-no-previous": "tests/test_job_deploy.py::test_failure_without_previous_release_is_clean",
    "deploy-cancelled-sigterm": "tests/test_job_deploy.py::test_cancelled_deploy_restores_the_previous_one",
    "deploy-target-engine-answers-garbage-or-drops": "tests/test_deploy_target.py::test_any_failure_after_the_stop_starts_the_previous_release_again",
    "deploy-target-cancelled-sigterm": "tests/test_deploy_target.py::test_a_cancelled_deploy_starts_the_previous_release_again",
    "rollback-target-engine-drops": "tests/test_deploy_target.py::test_a_failed_rollback_starts_the_current_release_again",
    "gitlab-500-429-transient": "tests/test_report.py::test_transient_errors_are_retried",
    "gitlab-5xx-persistent": "tests/test_report.py::test_persistent_errors_fail_after_bounded_retries",
    "corrupt-idx-files": "examples/fashion-mnist/tests/test_fmnist_loader.py::test_loader_rejects_bad_files_with_a_one_line_error_naming_the_file",
    "corrupt-data-at-init": "tests/test_init.py::test_example_with_corrupt_data_is_rolled_back",
}




def _pytest(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True)


def pytest_counts(args: list[str], section: str) -> dict | None:
    """Run pytest on ARGS with CI_GEN_COUNTS_FILE set; the test writes SECTION there."""
    with tempfile.TemporaryDirectory() as tmp:
        counts = Path(tmp) / "counts.json"
        proc = _pytest(args, {"CI_GEN_COUNTS_FILE": str(counts)})
        text = counts.read_text() if counts.is_file() else ""
    data = json.loads(text).get(section) if text else None
    if data is not None:
        data["tests_passed"] = proc.returncode == 0
    return data


def junit_outcomes(args: list[str]) -> dict[str, str] | None:
    """Run pytest on ARGS; test case name -> passed / failed / xfailed / xpassed / skipped."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        _pytest([f"--junitxml={junit}", *args])
        if not junit.is_file():
            return None
        outcomes: dict[str, str] = {}
        for case in ET.parse(junit).iter("testcase"):
            outcome = "passed"
            for child in case:
                if child.tag == "skipped":
                    outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
                elif child.tag in ("failure", "error"):
                    outcome = "xpassed" if "XPASS(strict)" in child.get("message", "") else "failed"
            outcomes[case.get("name", "")] = outcome
    return outcomes


def injection() -> dict | None:
    return pytest_counts(["tests/test_injection_corpus.py"], "injection")


BAD_INPUTS = "tests/test_bad_inputs.py"
TABLE_SECTION = "test_bad_input_is_refused_cleanly"  # tests/data/bad_inputs.yaml


def section_of(test_name: str) -> str | None:
    """The section a junit test case belongs to (see BAD_INPUTS's docstring): the name of
    its parametrised `test_bad_*` function, `table` for the table; None for other tests."""
    function, bracket, _ = test_name.partition("[")
    if not bracket or not function.startswith("test_bad_"):
        return None
    return "table" if function == TABLE_SECTION else function.removeprefix("test_bad_")


def bad_inputs() -> dict[str, object] | None:
    """Run every case of every section; count the clean ones per section (known bugs apart)."""
    outcomes = junit_outcomes([BAD_INPUTS])
    if not outcomes:
        return None
    sections: dict[str, dict[str, int]] = {}
    dirty: list[str] = []
    for name, outcome in outcomes.items():
        section = section_of(name)
        if section is None:
            continue
        counts = sections.setdefault(section, {"cases": 0, "clean": 0, "known_bugs": 0})
        counts["cases"] += 1
        case = f"{section}: {name.partition('[')[2].rstrip(']')}"
        if outcome == "xpassed":
            counts["known_bugs"] += 1
            dirty.append(f"{case}: marked bug but now clean (drop its `bug:`)")
        elif outcome == "xfailed":
            counts["known_bugs"] += 1
        elif outcome == "passed":
            counts["clean"] += 1
        else:
            dirty.append(f"{case} ({outcome})")
    total = {k: sum(c[k] for c in sections.values()) for k in ("cases", "clean", "known_bugs")}
    return {"sections": sections, **total, "dirty": dirty}



def secrets_counts() -> dict[str, int] | None:
    """Issue 6, Secrets: the whole local pipeline (tests/test_example_pipeline.py) runs with
    sentinel S3 keys and a sentinel GitLab token, then job logs, artifacts, builds, the work
    trees, every commit, the run's output and the rendered templates are scanned."""
    return pytest_counts(["tests/test_example_pipeline.py"], "secrets")


def oidc_secrets_counts() -> dict[str, int] | None:
    """Issue 25: train -> dvc-upload -> a fresh restore with `remote-auth: oidc`; every file
    under the project (jobs' work trees, artifacts, caches, logs) and the run's output scanned
    for the short-lived credentials STS issued and the ID tokens."""
    return pytest_counts(["tests/test_dvc_auth_oidc_pipeline.py"], "secrets_oidc")


def fault_counts() -> dict[str, int] | None:
    """Issue 6, Faults: run the tests that inject them; a fault survived when its test passes."""
    outcomes = junit_outcomes(sorted(set(FAULT_TESTS.values())))
    if outcomes is None:
        return None
    passed: dict[str, bool] = {}
    for name, outcome in outcomes.items():
        test = name.split("[")[0]
        passed[test] = passed.get(test, True) and outcome == "passed"
    survived = sum(passed.get(test.split("::")[1], False) for test in FAULT_TESTS.values())
    return {"injected": len(FAULT_TESTS), "survived": survived}


PARTS = ("injection", "bad-inputs", "secrets", "faults")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-table", action="store_true", help="skip the bad-input sections")
    parser.add_argument("--only", action="append", choices=PARTS, metavar="PART",
                        help=f"measure only these parts ({', '.join(PARTS)}); repeatable")
    args = parser.parse_args()
    only = set(args.only or PARTS) - ({"bad-inputs"} if args.skip_table else set())
    failed = False

    if "injection" in only:
        t = injection()
        if t is None:
            print("injection: not measured (tests/test_injection_corpus.py wrote no counts)")
            failed = True
        else:
            print(f"injection payloads tried: {t['tried']} (refused with one line: {t['refused']}, "
                  f"rendered safely: {t['safe']}, unsafe: {len(t['unsafe'])}) in "
                  f"{t['seconds']:.1f} s; script lines run under bash: {t['script_lines_run']}")
            for line in t["unsafe"][:20]:
                print(f"  UNSAFE {line}")
            failed |= bool(t["unsafe"])

    if "bad-inputs" in only:
        start = time.perf_counter()
        b = bad_inputs()
        secs = time.perf_counter() - start
        if b is None:
            print("bad inputs: not measured (pytest wrote no report)")
            failed = True
        else:
            print(f"bad inputs: {len(b['sections'])} sections, {b['cases']} cases, clean: "
                  f"{b['clean']}, known bugs (marked in the table): {b['known_bugs']}, other "
                  f"failures: {len(b['dirty'])} in {secs:.1f} s")
            for section, c in sorted(b["sections"].items(), key=lambda kv: kv[0] != "table"):
                print(f"  {section}: {c['cases']} cases, {c['clean']} clean"
                      + (f", {c['known_bugs']} known bugs" if c["known_bugs"] else ""))
            for name in b["dirty"]:
                print(f"  NOT CLEAN {name}")
            failed |= bool(b["dirty"])

    if "secrets" in only:
        s = secrets_counts()
        print("secrets: not measured yet" if s is None
              else f"secrets: {s['secrets']} sentinel credentials, {s['scanned']} files and logs "
                   f"scanned, found: {s['found']}")
        failed |= bool(s and s["found"])
        o = oidc_secrets_counts()
        print("secrets, oidc path: not measured yet" if o is None
              else f"secrets, oidc path: {o['secrets']} issued credentials and ID tokens, "
                   f"{o['scanned']} files and logs scanned, found: {o['found']}")
        failed |= bool(o and o["found"])
    if "faults" in only:
        f = fault_counts()
        print("faults: not measured yet" if f is None
              else f"faults injected: {f['injected']}, survived: {f['survived']}")
        failed |= bool(f and f["survived"] != f["injected"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
