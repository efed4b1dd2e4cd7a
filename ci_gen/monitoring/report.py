"""The drift report: report.json (machine-readable), report.md (the issue's text), drift.png."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ci_gen.files import atomic_write
from ci_gen.monitoring.drift import SignalDrift

DRIFT, STABLE, INSUFFICIENT = "drift", "stable", "insufficient"
HEADLINE = {DRIFT: "drift found", STABLE: "no drift", INSUFFICIENT: "not enough traffic to judge"}
PLOT = "drift.png"


@dataclass
class DriftReport:
    model: str
    source: str
    reference: str
    reference_samples: int
    min_samples: int
    signals: list[SignalDrift]
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

    @property
    def samples(self) -> float:
        """Observations in the window: the smallest count over the signals."""
        return min((s.live_total for s in self.signals), default=0.0)

    @property
    def verdict(self) -> str:
        if self.samples < self.min_samples or self.samples == 0:
            return INSUFFICIENT
        return DRIFT if any(s.drifted for s in self.signals) else STABLE

    @property
    def drifted(self) -> list[str]:
        return [s.name for s in self.signals if s.drifted] if self.verdict == DRIFT else []

    def to_json(self) -> dict:
        return {
            "model": self.model, "verdict": self.verdict, "created": self.created,
            "source": self.source, "samples": round(self.samples, 3), "min_samples": self.min_samples,
            "reference": {"path": self.reference, "samples": self.reference_samples},
            "signals": [{"name": s.name, "psi": round(s.psi, 6), "threshold": s.threshold,
                         "drifted": s.drifted, "live_total": round(s.live_total, 3),
                         "bins": list(s.bins), "reference": [round(p, 6) for p in s.reference],
                         "live": [round(p, 6) for p in s.live]} for s in self.signals],
        }

    def markdown(self, plot: str | None = PLOT) -> str:
        lines = [
            f"## Model monitoring: {self.model}: {HEADLINE[self.verdict]}",
            "",
            f"Live: {self.source}, {self.samples:.0f} predictions (at least {self.min_samples} judged). "
            f"Reference: `{self.reference}` ({self.reference_samples} test samples). {self.created}.",
            "",
            "| signal | PSI | threshold | verdict |",
            "|---|---:|---:|---|",
        ]
        for s in self.signals:
            mark = "not judged" if self.verdict == INSUFFICIENT else "**drift**" if s.drifted else "ok"
            lines.append(f"| {s.name} | {s.psi:.3f} | {s.threshold:g} | {mark} |")
        lines += ["", "PSI (population stability index): below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 major."]
        if plot:
            lines += ["", f"![reference vs live]({plot})"]
        for s in self.signals:
            lines += ["", f"<details><summary>{s.name}: share per bin, reference vs live</summary>", "",
                      "| bin | reference | live |", "|---|---:|---:|"]
            lines += [f"| {b} | {r:.3f} | {c:.3f} |" for b, r, c in zip(s.bins, s.reference, s.live)]
            lines += ["", "</details>"]
        return "\n".join(lines) + "\n"


def write(report: DriftReport, out_dir: Path) -> dict[str, Path]:
    """report.json, report.md and drift.png in out_dir; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md", "plot": out_dir / PLOT}
    plot(report, paths["plot"])
    atomic_write(paths["json"], json.dumps(report.to_json(), indent=2) + "\n")
    atomic_write(paths["markdown"], report.markdown())
    return paths


def plot(report: DriftReport, path: Path) -> None:
    """One bar chart per signal: reference and live share of each bin side by side."""
    import matplotlib

    matplotlib.use("Agg")  # no display in CI
    import matplotlib.pyplot as plt

    n = max(1, len(report.signals))
    fig, axes = plt.subplots(n, 1, figsize=(9, 3.2 * n), dpi=90, squeeze=False)
    for ax, s in zip(axes[:, 0], report.signals):
        x = range(len(s.bins))
        ax.bar([i - 0.2 for i in x], s.reference, width=0.4, label="reference", color="#4c72b0")
        ax.bar([i + 0.2 for i in x], s.live, width=0.4, label="live", color="#dd8452")
        ax.set_xticks(list(x), s.bins, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("share")
        flag = " DRIFT" if s.drifted and report.verdict == DRIFT else ""
        ax.set_title(f"{s.name}: PSI {s.psi:.3f} (threshold {s.threshold:g}){flag}", fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(f"{report.model}: {HEADLINE[report.verdict]}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    atomic_write(path, buf.getvalue())
