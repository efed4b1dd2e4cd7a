"""`ci-gen job gate`: pass, fail and explain over a report.json from eval-report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ci_gen import cli
from ci_gen.evaluation import gate

REPORT = {
    "metrics": {"accuracy": 0.89, "loss": 0.31, "per_class.bag.recall": 0.7, "new_metric": 1.0,
                "label": "cnn"},
    "baseline": {"accuracy": 0.90, "loss": 0.30, "per_class.bag.recall": 0.8},
    "baseline_ref": "origin/main",
    "baseline_note": None,
    "deltas": {},
}


@pytest.fixture
def report(tmp_path) -> Path:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(REPORT))
    return path


def _gate(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["job", "gate", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("metric", ["", "none"])  # "none": the components' empty sentinel
def test_gate_off_needs_no_report(capsys, tmp_path, metric):
    code, out, _ = _gate(capsys, "--report", str(tmp_path / "missing.json"), "--metric", metric,
                         "--max-drop", "0.01")
    assert code == 0 and out == "gate off (no gate metric set)\n"


def test_drop_within_the_allowance_passes(report, capsys):
    # 0.90 -> 0.89 is a drop of exactly 0.01 (0.010000000000000009 in floats): allowed.
    code, out, _ = _gate(capsys, "--report", str(report), "--metric", "accuracy",
                         "--max-drop", "0.01")
    assert code == 0
    assert out == ("gate passed: accuracy = 0.8900 vs 0.9000 on origin/main "
                   "(change -0.0100, higher is better, allowed regression 0.0100)\n")


def test_larger_drop_fails_with_one_line(report):
    proc = subprocess.run([sys.executable, "-m", "ci_gen", "job", "gate", "--report", str(report),
                           "--metric", "per_class.bag.recall", "--max-drop", "0.05"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == ("ci-gen: error: gate failed: per_class.bag.recall dropped from 0.8000 "
                           "(origin/main) to 0.7000, a regression of 0.1000 > allowed 0.0500\n")


def test_improvement_passes_even_with_zero_allowance(report, tmp_path, capsys):
    data = dict(REPORT, metrics=dict(REPORT["metrics"], accuracy=0.95))
    report.write_text(json.dumps(data))
    code, out, _ = _gate(capsys, "--report", str(report), "--metric", "accuracy", "--max-drop", "0")
    assert code == 0 and "(change +0.0500" in out


def test_unknown_metric_lists_the_available_ones(report, capsys):
    code, _, err = _gate(capsys, "--report", str(report), "--metric", "acc", "--max-drop", "0.01")
    assert code == 1
    assert err == ("ci-gen: error: gate: unknown metric 'acc'; available metrics: accuracy, label, "
                   "loss, new_metric, per_class.bag.recall\n")


def test_non_numeric_metric_is_an_error(report, capsys):
    code, _, err = _gate(capsys, "--report", str(report), "--metric", "label", "--max-drop", "0")
    assert code == 1 and err == "ci-gen: error: gate: metric 'label' is not a number (\"cnn\")\n"


def test_no_baseline_passes_with_a_note(report, capsys):
    report.write_text(json.dumps(dict(REPORT, baseline=None, baseline_ref=None,
                                      baseline_note="no baseline: not a merge request pipeline")))
    code, out, _ = _gate(capsys, "--report", str(report), "--metric", "accuracy", "--max-drop", "0")
    assert code == 0
    assert out == ("gate passed: accuracy = 0.8900; nothing to compare with "
                   "(no baseline: not a merge request pipeline)\n")


def test_metric_new_in_this_branch_passes(report, capsys):
    code, out, _ = _gate(capsys, "--report", str(report), "--metric", "new_metric",
                         "--max-drop", "0")
    assert code == 0 and "origin/main has no value for it (new metric)" in out


@pytest.mark.parametrize("value", ["-0.1", "abc", "1e-3x", "", "0x1", "1e999"])
def test_bad_max_drop_is_a_usage_error(report, capsys, value):
    code, _, err = _gate(capsys, "--report", str(report), "--metric", "accuracy",
                         "--max-drop", value)
    assert code == 2 and "--max-drop must be a" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("value, code, tail", [
    ("1.0e-05", 1, "a regression of 0.0100 > allowed 0.0000\n"),
    ("1.0e-01", 0, "allowed regression 0.1000)\n"),
    ("0.5", 0, "allowed regression 0.5000)\n"),
])
def test_max_drop_as_gitlab_writes_numbers(report, capsys, value, code, tail):
    """GitLab interpolates a number input the way Ruby prints it: 0.00001 arrives as 1.0e-05."""
    got, out, err = _gate(capsys, "--report", str(report), "--metric", "accuracy", "--max-drop", value)
    assert got == code and (out + err).endswith(tail)


@pytest.mark.parametrize("metric", ["none", ""])
def test_gate_metric_none_turns_the_gate_off(report, capsys, metric):
    """`none` is the gate-metric input's "not set" word; the old empty string still works."""
    code, out, _ = _gate(capsys, "--report", str(report), "--metric", metric, "--max-drop", "0")
    assert (code, out) == (0, "gate off (no gate metric set)\n")


def test_bad_metric_name_is_a_usage_error(report, capsys):
    code, _, err = _gate(capsys, "--report", str(report), "--metric", "a;b", "--max-drop", "0")
    assert code == 2 and "is not a metric name" in err


def test_missing_or_foreign_report(tmp_path, capsys):
    code, _, err = _gate(capsys, "--report", str(tmp_path / "nope.json"), "--metric", "accuracy")
    assert code == 1 and "run `ci-gen job eval-report` first" in err
    other = tmp_path / "other.json"
    other.write_text("[1, 2]")
    code, _, err = _gate(capsys, "--report", str(other), "--metric", "accuracy")
    assert code == 1 and "is not a report.json from `ci-gen job eval-report`" in err


def test_check_raises_gate_failed():
    with pytest.raises(gate.GateFailed, match="a regression of 0.0100 > allowed 0.0050"):
        gate.check(REPORT, "accuracy", 0.005)


def test_lower_is_better_for_loss_like_metrics():
    report = {"metrics": {"loss": 0.30}, "baseline": {"loss": 0.20}, "baseline_ref": "origin/main"}
    with pytest.raises(gate.GateFailed, match="loss rose from 0.2000 .* a regression of 0.1000 > allowed 0.0500"):
        gate.check(report, "loss", 0.05, "lower")
    better = {"metrics": {"loss": 0.10}, "baseline": {"loss": 0.20}, "baseline_ref": "origin/main"}
    assert "lower is better" in gate.check(better, "loss", 0.0, "lower")
    # The same fall in loss would be a regression if higher were better.
    with pytest.raises(gate.GateFailed):
        gate.check(better, "loss", 0.05, "higher")
