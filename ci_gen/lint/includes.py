"""Resolve `include:` offline, so a project's whole pipeline is checked without a network.

- ci-gen's own components (`component: <host>/<project>/<name>@<version>`, `project:` +
  `file: templates/<name>.yml`, and `local: templates/<name>.yml` when that file is not in
  the project) are rendered in memory by the installed ci-gen with the include's `inputs:`.
- Local files are loaded (their `spec: inputs:` checked and interpolated, their own
  includes resolved in turn).
- Remote files, GitLab templates and other projects' files are reported as not checked.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ci_gen import __version__
from ci_gen import components as desc
from ci_gen.errors import CiGenError
from ci_gen.includes import items, normalise, parse_component, pins_installed, template_name
from ci_gen.lint import schema, spec
from ci_gen.lint.findings import ERROR, INFO, WARNING, Finding, Locate, json_path
from ci_gen.lint.yamlfile import Document, read

MAX_INCLUDES = 150  # GitLab's limit per pipeline


@dataclass
class Included:
    """The configuration one include contributes, and how to point at it."""

    label: str                 # e.g. "include[2] deploy@0.1.0"
    config: dict
    locate: Locate             # where findings about its keys point


@dataclass
class Resolution:
    included: list[Included] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    count: int = 0
    seen: set[tuple[Path, str]] = field(default_factory=set)
    # Includes that contribute nothing because they failed: the pipeline's job list is then
    # incomplete, and a reference to a job they would have defined proves nothing.
    failed: list[str] = field(default_factory=list)


def _looks_ours(project: str, ours: set[str]) -> bool:
    """A project that publishes ci-gen's components: its name says so, or another include of
    this file takes a known ci-gen component from it."""
    last = project.rstrip("/").rsplit("/", 1)[-1].lower()
    return "ci-gen" in last or "ci_gen" in last or project in ours


def version_note(name: str, ref: str | None) -> tuple[str, str] | None:
    """How far the installed ci-gen stands in for the version the pipeline will use."""
    installed = __version__
    if pins_installed(ref):
        return None
    shown = f"{name}@{ref}" if ref else f"{name} (default branch)"
    if ref is None or "$" in ref or ref.startswith("~") or installed.startswith(ref.lstrip("v") + "."):
        return INFO, f"{shown}: checked with the installed ci-gen {installed}"
    return WARNING, (f"{shown}: lint used the installed ci-gen {installed}; the pipeline will use "
                     f"{ref} (install ci-gen {ref} to check that version)")


@lru_cache(maxsize=64)
def _rendered(name: str, frozen_inputs: str) -> dict:
    from ci_gen.render import render

    data = yaml.safe_load(render(name, json.loads(frozen_inputs), mode="inline"))
    return data if isinstance(data, dict) else {}


def render_ours(name: str, inputs: Any, where: str) -> tuple[dict, dict[str, Any]]:
    """A ci-gen component rendered with concrete values, and those values; bad inputs raise
    InputError."""
    from ci_gen.inputs import resolve

    given = inputs if isinstance(inputs, dict) else {}
    if inputs is not None and not isinstance(inputs, dict):
        raise CiGenError(f"{where}: `inputs:` must be a mapping")
    values = resolve(desc.get(name), given, where=where)  # the error names the include, not just the component
    return copy.deepcopy(_rendered(name, json.dumps(given, sort_keys=True, default=str))), values


class Resolver:
    """Resolves the includes of one file (and of the local files it includes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.result = Resolution()

    def _add(self, path: str, location: str, message: str, severity: str) -> None:
        self.result.findings.append(Finding(path, location, message, severity))

    def _fail(self, where: str, path: str, location: str, message: str) -> None:
        """An include that contributes no jobs: one error, its root cause."""
        self.result.failed.append(where)
        self._add(path, location, message, ERROR)

    def resolve(self, config: dict, doc_path: str, locate: Locate) -> Resolution:
        entries = items(config.get("include"))
        ours_projects = set()
        for _key, raw in entries:
            item = normalise(raw)
            if item is None:
                continue
            if isinstance(item.get("component"), str):
                address = parse_component(item["component"])
                if address.name in desc.COMPONENTS:
                    ours_projects.add(address.project)
            elif isinstance(item.get("project"), str):
                for f in self._files(item):
                    if template_name(f) in desc.COMPONENTS:
                        ours_projects.add(item["project"])
        for index, (key, raw) in enumerate(entries):
            self.result.count += 1
            path, location, _ = locate(key)
            path = path or doc_path
            if self.result.count > MAX_INCLUDES:
                self._add(path, location, f"more than {MAX_INCLUDES} includes; GitLab refuses the pipeline", ERROR)
                return self.result
            where = f"include[{index}]" if key[-1] != "include" else "include"
            item = normalise(raw)
            if item is None:
                continue  # the schema reports the malformed item
            self._one(item, where, path, location, ours_projects)
        return self.result

    @staticmethod
    def _files(item: dict) -> list[str]:
        files = item.get("file")
        if isinstance(files, str):
            return [files]
        return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []

    def _ours(self, name: str, inputs: Any, label: str, path: str, location: str) -> None:
        try:
            config, values = render_ours(name, inputs, label)
            if name == "sweep":
                self._sweep_grid(values, label)
        except CiGenError as exc:
            self._fail(label, path, location, str(exc))
            return
        self._add_included(label, config, path, location)

    def _sweep_grid(self, values: dict[str, Any], label: str) -> None:
        """Each matrix variable of a sweep names a key of the project's params file, as every
        cell will check at run time (ci_gen.sweep.grid)."""
        from ci_gen.sweep.grid import load, unknown_variables

        params = self.root / values["params"]
        if not params.is_file():
            return  # a project still being set up; the cells say so when they run
        try:
            text = params.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CiGenError(f"{label}: cannot read {values['params']}: {exc}") from None
        unknown = unknown_variables(values["matrix"], load(text, values["params"]))
        if unknown:
            var = unknown[0]
            raise CiGenError(f"{label}: matrix variable {var} names no key of {values['params']} "
                             f"({var.replace('__', '.')}): every cell would fail; sweep an existing key")

    def _add_included(self, label: str, config: dict, path: str, location: str) -> None:
        def locate(key: tuple, _p=path, _l=location, _label=label) -> tuple[str | None, str, str]:
            return _p, _l, f" (in {_label})"
        for key, message, _where in schema.check_config(config):
            self._add(path, location, f"{label}: {json_path(key)}: {message}", ERROR)
        self.result.included.append(Included(label, config, locate))

    def _unknown(self, name: str, where: str, path: str, location: str) -> None:
        self._fail(where, path, location, f"{where}: unknown ci-gen component {name!r}; known: "
                                          f"{', '.join(desc.ORDER)}")

    def _one(self, item: dict, where: str, path: str, location: str, ours_projects: set[str]) -> None:
        if isinstance(item.get("component"), str):
            self._component(item, where, path, location, ours_projects)
        elif isinstance(item.get("project"), str):
            self._project(item, where, path, location, ours_projects)
        elif isinstance(item.get("local"), str):
            self._local(item["local"], item.get("inputs"), where, path, location)
        elif isinstance(item.get("remote"), str):
            self._add(path, location, f"{where}: remote {item['remote']} not checked offline", INFO)
        elif isinstance(item.get("template"), str):
            self._add(path, location, f"{where}: GitLab template {item['template']} not checked offline", INFO)

    def _component(self, item: dict, where: str, path: str, location: str, ours_projects: set[str]) -> None:
        inputs = item.get("inputs")
        address = parse_component(item["component"])
        project, name, version = address.project, address.name, address.version
        if project in ("$CI_PROJECT_PATH", "${CI_PROJECT_PATH}"):
            # A project testing its own components: GitLab takes them from this very
            # commit, which is the work tree here.
            candidates = (f"templates/{name}.yml", f"templates/{name}/template.yml")
            for rel in candidates:
                if (self.root / rel).is_file():
                    self._local_file(self.root / rel, rel, inputs, where, path, location)
                    return
            if name not in desc.COMPONENTS:
                self._fail(where, path, location, f"{where}: component {name!r} is not in this "
                                                  f"project: no {' or '.join(candidates)} in {self.root}")
                return
        if name in desc.COMPONENTS:
            if version is None:
                self._add(path, location, f"{where}: component {item['component']!r} has no "
                                          "@<version>; pin it to a release", ERROR)
            self._pinned(name, version, inputs, f"{where} {name}@{version or '?'}", where, path, location)
        elif _looks_ours(project, ours_projects):
            self._unknown(name, where, path, location)
        else:
            self._add(path, location, f"{where}: component {item['component']!r} not checked "
                                      "offline (not a ci-gen component)", INFO)

    def _project(self, item: dict, where: str, path: str, location: str, ours_projects: set[str]) -> None:
        ref = item.get("ref") if isinstance(item.get("ref"), str) else None
        for f in self._files(item):
            name = template_name(f)
            if name in desc.COMPONENTS:
                self._pinned(name, ref, item.get("inputs"),
                             f"{where} {name}@{item.get('ref', 'default branch')}", where, path, location)
            elif name and _looks_ours(item["project"], ours_projects):
                self._unknown(name, where, path, location)
            else:
                self._add(path, location, f"{where}: {item['project']}:{f} not checked offline "
                                          "(another project's file)", INFO)

    def _pinned(self, name: str, ref: str | None, inputs: Any, label: str, where: str, path: str,
                location: str) -> None:
        """A ci-gen component at a version: how far the installed one stands in, then its config."""
        note = version_note(name, ref)
        if note:
            self._add(path, location, f"{where}: {note[1]}", note[0])
        self._ours(name, inputs, label, path, location)

    def _local(self, local: str, inputs: Any, where: str, path: str, location: str) -> None:
        rel = local.lstrip("/")
        if any(c in rel for c in "*?["):
            matches = sorted(p for p in self.root.glob(rel) if p.is_file())
            if not matches:
                self._fail(where, path, location, f"{where}: local {local!r} matches no file")
            for match in matches:
                self._local_file(match, match.relative_to(self.root).as_posix(), inputs, where, path, location)
            return
        target = self.root / rel
        name = template_name(local)
        if not target.is_file() and name in desc.COMPONENTS:
            self._ours(name, inputs, f"{where} {name}@{__version__} (installed)", path, location)
            return
        if not target.is_file():
            self._fail(where, path, location, f"{where}: local file {local!r} does not exist "
                                              f"(looked in {self.root})")
            return
        self._local_file(target, rel, inputs, where, path, location)

    def _local_file(self, target: Path, rel: str, inputs: Any, where: str, path: str, location: str) -> None:
        seen = (target.resolve(), json.dumps(inputs, sort_keys=True, default=str))
        if seen in self.result.seen:
            return  # the same file with the same inputs is included once
        self.result.seen.add(seen)
        try:
            _text, docs = read(target, rel)
        except CiGenError as exc:
            self._fail(where, path, location, f"{where}: {exc}")
            return
        header, body = (docs[0].data, docs[1]) if len(docs) >= 2 else (None, docs[0] if docs else None)
        if body is None or not isinstance(body.data, dict):
            self._fail(where, path, location, f"{where}: {rel} holds no jobs (top level must be a mapping)")
            return
        data = body.data
        if header is not None:
            values, problems = spec.resolve(spec.declared(header), inputs if inputs is not None else {})
            for problem in problems:
                self._add(path, location, f"{where} ({rel}): {problem}", ERROR)
            if problems:
                self.result.failed.append(where)
                return  # GitLab refuses the include; its jobs would only add noise
            data = spec.interpolate(data, values)
        elif inputs:
            self._add(path, location, f"{where}: {rel} takes no inputs (it has no `spec:` header)", ERROR)

        via = f" (via {path} {where})"

        def locate(key: tuple, _doc: Document = body, _data=data, _rel=rel) -> tuple[str | None, str, str]:
            return _rel, _doc.where(spec.translate(key, _data, _doc.data)), via
        for key, message, at in schema.check_config(data):
            self._add(rel, locate(at)[1], f"{json_path(key)}: {message}{via}", ERROR)
        if "include" in data:
            # The file's own includes come first, so its keys override theirs when merged.
            self.resolve(data, rel, locate)
        own = {k: v for k, v in data.items() if k != "include"}
        self.result.included.append(Included(f"{where} {rel}", own, locate))
