"""Test harness shared by the test modules, one home a piece: `cli` (run ci-gen and
pipelines, read their summary), `git` (scratch repositories), `trees` (hash a tree, scan it
for secrets), `counts` (figures for benchmarks/hardening_counts.py), and the injection
harness: `payloads` (payload pieces and hypothesis strategies), `shell` (where a placeholder
stands in a script line, and running script lines with recording stand-ins), `injection`
(the whole property for one value). Nothing outside tests/ imports it."""
