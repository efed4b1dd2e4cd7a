"""Linting one CI file, step by step: split it into header and body, check the header, the
body against GitLab's schema, then the policy of a component or of a pipeline (with its
includes merged in). The findings come back in one `Report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_gen import components as desc
from ci_gen.lint import catalog, includes, policy, schema, spec
from ci_gen.lint.findings import ERROR, WARNING, Finding, Sink, json_path
from ci_gen.lint.merge import deep_merge, jobs, visible
from ci_gen.lint.yamlfile import Document, read

@dataclass
class Report:
    path: str
    findings: list[Finding] = field(default_factory=list)
    jobs: int = 0
    documents: int = 0
    content: str = ""
    # DVC jobs of ci-gen components on `remote-auth: keys` (they could use `oidc`).
    keys_mode: list[str] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def errors(self) -> int:
        return self.count(ERROR)

    @property
    def warnings(self) -> int:
        return self.count(WARNING)

    def summary(self) -> str:
        if self.errors:
            return f"{self.path}: {self.errors} error(s), {self.warnings} warning(s)"
        text = (f"ok: {self.path} ({self.jobs} job{'s' * (self.jobs != 1)}, "
                f"{self.documents} document{'s' * (self.documents != 1)})")
        return text + (f", {self.warnings} warning(s)" if self.warnings else "")


def project_root(file: Path) -> Path:
    """The git work tree holding `file` (local includes are relative to it), else its folder."""
    start = file.resolve().parent
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def _split(docs: list[Document], sink: Sink) -> tuple[Document | None, Document | None]:
    """(header, body) of a file's documents; structural problems are reported."""
    if not docs:
        sink.add((), "empty file: no YAML document")
        return None, None
    if len(docs) > 2:
        sink.add(("#doc", 2), f"{len(docs)} YAML documents: a CI file is one document, or a "
                              "`spec:` header, `---` and the jobs")
    first = docs[0]
    is_header = isinstance(first.data, dict) and "spec" in first.data
    if len(docs) == 1:
        if is_header and len(first.data) > 1:
            sink.add(("spec",), "`spec:` must be a header document of its own: end it with `---` "
                                "and put the jobs below")
            body = Document({k: v for k, v in first.data.items() if k != "spec"}, first.marks, first.start)
            return Document({"spec": first.data["spec"]}, first.marks, first.start), body
        if is_header:
            sink.add(("spec",), "a `spec:` header and no jobs: put `---` and the jobs below it")
            return first, None
        return None, first
    if not is_header:
        sink.add(("#doc", 0), "the first of two YAML documents must be the `spec:` header")
        return None, first
    return first, docs[1]


def _file_locate(docs: list[Document]):
    """Locate ("#doc", i) as the start of document i, other keys in the first document."""
    def locate(key: tuple) -> tuple[str | None, str, str]:
        if key[:1] == ("#doc",):
            return None, docs[key[1]].where(()) if key[1] < len(docs) else "", ""
        return None, docs[0].where(key) if docs else "1:1", ""
    return locate


def _locate_in(doc: Document, data: Any):
    def locate(key: tuple) -> tuple[str | None, str, str]:
        if key and key[0] == "#doc":
            return None, "", ""
        return None, doc.where(spec.translate(key, data, doc.data)), ""
    return locate


def lint_file(path: str | Path, *, strict: bool = False, root: Path | None = None,
              schema_only: bool = False) -> Report:
    """Findings for one CI file. Missing or malformed files raise one-line CiGenErrors.

    `strict` adds the strict policy (always on for ci-gen's own `templates/<name>.yml`);
    `schema_only` stops after GitLab's schema (what `ci-gen run` checks before it starts).
    """
    name = str(path)
    file = Path(path)
    text, docs = read(file, name)
    report = Report(name, documents=len(docs), content=text)
    doc_sink = Sink(name, _file_locate(docs))
    header, body = _split(docs, doc_sink)
    report.findings = doc_sink.findings
    if body is None or not _is_jobs_mapping(body, docs, doc_sink):
        return report

    component = header is not None and file.name != ".gitlab-ci.yml"
    values = _check_header(header, body, doc_sink, component) if header is not None else {}
    config = spec.interpolate(body.data, values) if header is not None else body.data
    own_locate = _locate_in(body, config)
    sink = doc_sink.with_locate(own_locate)
    for key, message, where in schema.check_config(config):
        sink.add(where, f"{json_path(key)}: {message}")
    if schema_only:
        report.findings = _ordered(sink.findings, name)
        return report

    if component:
        own_template = file.parent.name == "templates" and file.stem in desc.COMPONENTS
        _check_component(config, sink, strict or own_template)
    else:
        config = _check_pipeline(config, file, root or project_root(file), own_locate, sink, strict)
        report.keys_mode = policy.keys_mode_jobs(config)
    report.jobs = sum(1 for n in jobs(config) if visible(n))
    report.findings = _ordered(sink.findings, name)
    return report


def _is_jobs_mapping(body: Document, docs: list[Document], sink: Sink) -> bool:
    if isinstance(body.data, dict):
        return True
    got = "nothing" if body.data is None else type(body.data).__name__
    sink.add(("#doc", docs.index(body) if body in docs else 0),
             f"the jobs document must be a mapping of jobs and keywords, got {got}")
    return False


def _check_header(header: Document, body: Document, doc_sink: Sink, component: bool) -> dict[str, Any]:
    """The `spec:` header against GitLab's schema and include rules; returns the inputs'
    default values, which the body is checked with."""
    head = doc_sink.with_locate(lambda key: (None, header.where(key), ""))
    for key, message, where in schema.check_header(header.data):
        head.add(where, f"{json_path(key)}: {message}")
    declared = spec.declared(header.data)
    for key, message in spec.header_problems(declared):  # what GitLab refuses on include
        head.add(key, message)
    values, _ = spec.resolve(declared, {}, required_ok=True)
    for missing in sorted(spec.used(body.data) - set(declared)):
        doc_sink.with_locate(lambda key: (None, body.where(()), "")).add(
            (), f"the jobs use input {missing!r}, which the header does not declare")
    if component:
        policy.check_inputs(header.data, head)
        # What the CI/CD Catalog refuses when the component is released (lint.catalog).
        spec_data = header.data.get("spec") if isinstance(header.data, dict) else None
        if isinstance(spec_data, dict):
            for key, message in catalog.problems(spec_data):
                head.add(("spec",) + key, message)
    return values


def _check_component(config: dict, sink: Sink, strict: bool) -> None:
    """A component's body: self-contained jobs (no stages or needs of the pipeline)."""
    policy.check_component_body(config, sink)
    eff = policy.check_structure(config, sink, stages=False, needs=False)
    policy.check_gitlab_limits(config, eff, sink)
    policy.check_images(config, sink)
    policy.check_resource_groups(eff, sink)
    if strict:
        policy.check_strict(eff, sink)


def _check_pipeline(config: dict, file: Path, root: Path, own_locate, sink: Sink,
                    strict: bool) -> dict:
    """A pipeline with its includes merged in (returned), and the DVC remotes it will use."""
    name = sink.path
    config, failed = _with_includes(config, name, root, own_locate, sink)
    sink.extend(policy.check_dvc_remotes(file.parent, str(Path(name).parent / ".dvc" / "config")))
    before = len(sink.findings)
    eff = policy.check_structure(config, sink)
    policy.check_gitlab_limits(config, eff, sink)
    if failed:
        sink.findings[before:] = _without_dangling(sink.findings[before:])
    policy.check_images(config, sink)
    policy.check_runner_host_deploys(eff, sink)
    policy.check_static_keys(config, file.parent, str(Path(name).parent / ".dvc" / "config"), sink)
    if strict:
        policy.check_resource_groups(eff, sink)
        policy.check_strict(eff, sink)
    return config


# Findings about a reference to a job that is not there. After an include failed, the
# pipeline lacks that include's jobs, so these restate the include's error: left out.
_DANGLING = ("not a job of this pipeline", "which is not defined")


def _without_dangling(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not any(text in f.message for text in _DANGLING)]


def _with_includes(config: dict, name: str, root: Path, own_locate,
                   sink: Sink) -> tuple[dict, list[str]]:
    """The pipeline with its includes merged in, and the includes that failed; `sink` then
    locates each job where it comes from."""
    resolution = includes.Resolver(root).resolve(config, name, own_locate)
    sink.extend(resolution.findings)
    merged: dict = {}
    origin: dict[Any, Any] = {}
    for inc in resolution.included:
        merged = deep_merge(merged, inc.config)
        for key in inc.config:
            origin[key] = inc.locate
    merged = deep_merge(merged, {k: v for k, v in config.items() if k != "include"})

    def locate(key: tuple) -> tuple[str | None, str, str]:
        if key and key[0] not in config and key[0] in origin:
            return origin[key[0]](key)
        return own_locate(key)

    sink.locate = locate
    return merged, resolution.failed


def _ordered(findings: list[Finding], name: str) -> list[Finding]:
    """The file's own findings by position, then those inside other (local) files."""
    def key(f: Finding) -> tuple:
        line, _, col = f.location.partition(":")
        pos = (int(line), int(col)) if line.isdigit() and col.isdigit() else (0, 0)
        return (f.path != name, f.path, pos)
    return sorted(findings, key=key)


def server_findings(report: Report, gitlab_url: str | None, project: str) -> tuple[bool, list[Finding]]:
    """GitLab's own lint of the file (its project's CI lint API): (valid, findings).

    The messages are GitLab's, unchanged. Network and auth failures raise CiGenError.
    """
    from ci_gen.gitlab.ci_lint import server_lint

    valid, errors, warnings = server_lint(report.content, gitlab_url, project)
    found = [Finding(report.path, "", f"GitLab: {e}", ERROR) for e in errors]
    found += [Finding(report.path, "", f"GitLab: {w}", WARNING) for w in warnings]
    if not valid and not errors:
        found.append(Finding(report.path, "", "GitLab: configuration is invalid", ERROR))
    if report.keys_mode:
        from ci_gen.gitlab.variables import stored_keys

        stored = stored_keys(gitlab_url, project, policy.STATIC_KEYS)
        if stored:
            found.append(Finding(report.path, "", (
                f"project {project} stores static cloud keys ({', '.join(stored)}) as CI/CD variables while "
                f"its DVC jobs ({', '.join(sorted(report.keys_mode)[:3])}"
                f"{', ...' if len(report.keys_mode) > 3 else ''}) can use `remote-auth: oidc`: short-lived "
                "credentials from the job's ID token; then delete the keys (see Keyless credentials in "
                "ci-gen's README)"), WARNING))
    return valid, found
