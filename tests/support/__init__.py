"""Test harness shared by the test modules, one home a piece: `cli` (run ci-gen as a user
would), `git` (a test identity, scratch projects), `pipeline` (`ci-gen run` and its summary,
in-process runs, job logs, the gitlab-ci-local they use), `trees` (hash a tree, scan it for
secrets), `counts` (figures for benchmarks/hardening_counts.py), and the injection harness:
`payloads` (payload pieces, hypothesis strategies), `shell` (where a placeholder stands in a
script line; running script lines with recording stand-ins), `injection` (the whole property
for one value, and the fixed corpus). Only tests import it (conftest.py puts tests/ on
sys.path)."""
