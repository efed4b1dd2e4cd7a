"""`ci-gen lint`: GitLab's CI schema, then policy checks, on a CI file and what it includes.

Offline. A file is one YAML document (a pipeline) or a `spec:` header, `---` and the jobs
(a component, or a pipeline with inputs). Every document is checked against GitLab's schema
(check-jsonschema's vendored copy); a body is checked as GitLab will see it, with its
`$[[ inputs.x ]]` replaced by the defaults. Includes of ci-gen's own components are rendered
by the installed ci-gen, so a project's pipeline is checked across components.

`linter` runs the steps; `schema`, `spec` (headers and inputs), `policy`, `includes`, `merge`
(GitLab's keyword merging) and `yamlfile` (YAML with positions) are the checks and readers.
"""

from ci_gen.lint.findings import ERROR, INFO, WARNING, Finding
from ci_gen.lint.linter import Report, lint_file, server_findings

__all__ = ["ERROR", "INFO", "WARNING", "Finding", "Report", "lint_file", "server_findings"]
