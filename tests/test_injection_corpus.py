"""The fixed injection corpus behind the README's "Reliability" figures: every component input
x every payload piece (alone, after a valid value, doubled), long and unicode strings, the
nastiest accepted values, and ci-gen's own options (`init`, `render --input`, `job deploy`),
each through the same check as the property tests. None may be unsafe.

With CI_GEN_COUNTS_FILE set, the figures are written there (benchmarks/hardening_counts.py).
"""

from __future__ import annotations

import os
import time

import pytest

from support.counts import record_counts
from support.injection import run_corpus
from support.payloads import MARKER_DIR, marker_stays_absent  # noqa: F401  (fixture)

# About 100 s for a count, not for a verdict: the property tests (test_injection_*.py) check
# the same inputs on every run; the benchmark runs this corpus for the README's figures.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.environ.get("CI_GEN_COUNTS_FILE"),
                                 reason="the fixed corpus runs under benchmarks/hardening_counts.py")]


def test_fixed_corpus_is_refused_or_inert():
    start = time.perf_counter()
    tally = run_corpus(MARKER_DIR)
    record_counts("injection", {"tried": tally.tried, "refused": tally.refused, "safe": tally.safe,
                                "unsafe": tally.unsafe, "script_lines_run": tally.script_lines_run,
                                "seconds": round(time.perf_counter() - start, 1)})
    assert tally.unsafe == [], tally.unsafe[:20]
