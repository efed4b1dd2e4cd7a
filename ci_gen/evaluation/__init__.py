"""What `ci-gen job eval-report` and `ci-gen job gate` compute.

- `metrics`: reading a metrics file, flattening it to dotted names, which way each is better;
- `baseline`: the ref to compare with, its metrics (through DVC) and the params diff;
- `report`: report.md and report.json;
- `gate`: the quality gate over report.json.
"""
