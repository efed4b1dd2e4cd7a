"""Figures a test hands to benchmarks/hardening_counts.py: when CI_GEN_COUNTS_FILE is set
(the benchmark runs pytest with it), each section is merged into that JSON file."""

from __future__ import annotations

import json
import os
from pathlib import Path


def record_counts(section: str, figures: dict) -> None:
    """Write FIGURES under SECTION in $CI_GEN_COUNTS_FILE (nothing when it is unset)."""
    target = os.environ.get("CI_GEN_COUNTS_FILE")
    if not target:
        return
    path = Path(target)
    text = path.read_text() if path.is_file() else ""
    data = json.loads(text) if text else {}
    data[section] = figures
    path.write_text(json.dumps(data))
