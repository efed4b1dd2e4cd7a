"""edge-convert's results: edge.json and the markdown section eval-report puts in the MR
report (any `*.md` in the report sections directory is appended there)."""

from __future__ import annotations

from typing import Any, Mapping


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


def markdown(result: Mapping[str, Any]) -> str:
    ref, gate = result["reference"], result["gate"]
    lines = [
        "## Edge conversion (LiteRT)",
        "",
        f"{result['test_samples']} held-out samples; int8 calibrated on "
        f"{result['representative_samples']} training samples. Gate: accuracy drop ≤ "
        f"{gate['max_accuracy_drop']:g}, agreement with the SavedModel ≥ {gate['min_agreement']:g}.",
        "",
        "| model | size | accuracy | change | agreement | latency p50 | gate |",
        "|---|---|---|---|---|---|---|",
        f"| SavedModel | {_size(ref['size_bytes'])} | {ref['accuracy']:.4f} | — | — | "
        f"{ref['latency_p50_ms']:.3f} ms | — |",
    ]
    for row in result["variants"]:
        said = "✅ pass" if row["passed"] else "❌ " + "; ".join(row["failures"])
        lines.append(f"| `{row['file']}` ({row['name']}) | {_size(row['size_bytes'])} | "
                     f"{row['accuracy']:.4f} | {row['accuracy'] - ref['accuracy']:+.4f} | "
                     f"{row['agreement']:.4f} | {row['latency_p50_ms']:.3f} ms | {said} |")
    lines += ["", f"**Edge gate: {'passed' if gate['passed'] else 'failed'}.**", ""]
    return "\n".join(lines)
